package worker

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/sandbox/internal/testmod"
	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// bigint2 is the signature of testmod.AddSpinBoomWAT's exports' arguments.
var bigint2 = []udf.Type{udf.BigInt, udf.BigInt}

// BenchmarkEngineDirectBigint1024 is the same batch run by the engine
// in-process, without the worker hop: the difference to
// sandbox.BenchmarkCallDirectBigint1024 is the cost of the process boundary.
func BenchmarkEngineDirectBigint1024(b *testing.B) {
	forInterruptModes(b, benchEngineDirect)
}

func benchEngineDirect(b *testing.B, precise bool) {
	ctx := context.Background()
	e, err := newEngine(ctx, engineConfig{MemoryLimitPages: 16, MaxInstances: 1, PreciseInterrupt: precise}, testmod.WAT(b, testmod.AddSpinBoomWAT))
	if err != nil {
		b.Fatal(err)
	}
	defer e.close(ctx)
	a := make([]int64, 1024)
	in := testmod.BigintInput(a, a)
	spec := &wire.FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: bigint2, Result: udf.BigInt}
	runEngine(b, e, spec, in)
}

// BenchmarkEngineBatchAffine1024 runs the Go guest affine (a*b+c) on a
// 1024-row batch in-process: the guest's own cost, without the worker hop.
// Sub-benchmarks compare the two interrupt modes (policies.Interrupt).
func BenchmarkEngineBatchAffine1024(b *testing.B) {
	forInterruptModes(b, benchEngineAffine)
}

func benchEngineAffine(b *testing.B, precise bool) {
	ctx := context.Background()
	e, err := newEngine(ctx, engineConfig{MemoryLimitPages: 1024, MaxInstances: 1, PreciseInterrupt: precise}, testmod.GoGuest(b, "affine"))
	if err != nil {
		b.Fatal(err)
	}
	defer e.close(ctx)
	if err := e.warm(ctx); err != nil {
		b.Fatal(err)
	}
	in := abi.AppendInput(nil, testmod.BigintBatch(3, 1024))
	big := udf.BigInt
	spec := &wire.FuncSpec{Export: "affine", ABI: udf.ABIBatch, Args: []udf.Type{big, big, big}, Result: big}
	runEngine(b, e, spec, in)
}

// BenchmarkEngineUpper1024 runs the Go guest upper (VARCHAR, row at a time)
// on 1024 16-byte strings in-process.
func BenchmarkEngineUpper1024(b *testing.B) {
	ctx := context.Background()
	e, err := newEngine(ctx, engineConfig{MemoryLimitPages: 1024, MaxInstances: 1}, testmod.GoGuest(b, "upper"))
	if err != nil {
		b.Fatal(err)
	}
	defer e.close(ctx)
	col := &abi.Column{Type: udf.Varchar, Offsets: binary.LittleEndian.AppendUint32(nil, 0)}
	for r := 0; r < 1024; r++ {
		col.Values = append(col.Values, "abcdefghijklmnop"...)
		col.Offsets = binary.LittleEndian.AppendUint32(col.Offsets, uint32(len(col.Values)))
	}
	in := abi.AppendInput(nil, &abi.Batch{Rows: 1024, Columns: []*abi.Column{col}})
	vc := udf.Varchar
	spec := &wire.FuncSpec{Export: "upper", ABI: udf.ABIBatch, Args: []udf.Type{vc}, Result: vc}
	runEngine(b, e, spec, in)
}

// runEngine times e.call on one input region and reports rows/s for the
// 1024-row batches these benchmarks use.
func runEngine(b *testing.B, e *engine, spec *wire.FuncSpec, in []byte) {
	ctx := context.Background()
	var dst []byte
	var err error
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if dst, err = e.call(ctx, spec, time.Second, in, dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "rows/s")
}

// forInterruptModes runs bench once per policies.Interrupt mode, as
// sub-benchmarks named for it.
func forInterruptModes(b *testing.B, bench func(b *testing.B, precise bool)) {
	for _, precise := range []bool{false, true} {
		name := "interrupt=process"
		if precise {
			name = "interrupt=wasm"
		}
		b.Run(name, func(b *testing.B) { bench(b, precise) })
	}
}
