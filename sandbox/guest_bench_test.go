package sandbox

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/udf"
)

var (
	goGuestOnce sync.Once
	goGuestDir  string
	goGuestErr  error
)

// goGuest builds examples/go/<name> for wasip1 once per test binary.
func goGuest(tb testing.TB, name string) []byte {
	tb.Helper()
	goGuestOnce.Do(func() { goGuestDir, goGuestErr = os.MkdirTemp("", "udfhost-guests-") })
	if goGuestErr != nil {
		tb.Fatal(goGuestErr)
	}
	out := filepath.Join(goGuestDir, name+".wasm")
	if _, err := os.Stat(out); err != nil {
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./examples/go/"+name)
		cmd.Dir = filepath.Join(filepath.Dir(file), "..")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("build %s: %v\n%s", name, err, b)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func bigintBatch(cols, rows int) *abi.Batch {
	b := &abi.Batch{Rows: uint32(rows)}
	for c := 0; c < cols; c++ {
		col := &abi.Column{Type: udf.BigInt}
		for r := 0; r < rows; r++ {
			col.Values = binary.LittleEndian.AppendUint64(col.Values, uint64(r+c))
		}
		b.Columns = append(b.Columns, col)
	}
	return b
}

// BenchmarkEngineBatchAffine1024 runs the Go guest affine (a*b+c) on a
// 1024-row batch in-process: the guest's own cost, without the worker hop.
// Sub-benchmarks compare the two interrupt modes (policies.Interrupt).
func BenchmarkEngineBatchAffine1024(b *testing.B) {
	forInterruptModes(b, benchEngineAffine)
}

func benchEngineAffine(b *testing.B, precise bool) {
	ctx := context.Background()
	e, err := newEngine(ctx, engineConfig{MemoryLimitPages: 1024, MaxInstances: 1, PreciseInterrupt: precise}, goGuest(b, "affine"))
	if err != nil {
		b.Fatal(err)
	}
	defer e.close(ctx)
	if err := e.warm(ctx); err != nil {
		b.Fatal(err)
	}
	in := abi.AppendInput(nil, bigintBatch(3, 1024))
	big := udf.BigInt
	spec := &FuncSpec{Export: "affine", ABI: udf.ABIBatch, Args: []udf.Type{big, big, big}, Result: big}
	runEngine(b, e, spec, in)
}

// BenchmarkEngineUpper1024 runs the Go guest upper (VARCHAR, row at a time)
// on 1024 16-byte strings in-process.
func BenchmarkEngineUpper1024(b *testing.B) {
	ctx := context.Background()
	e, err := newEngine(ctx, engineConfig{MemoryLimitPages: 1024, MaxInstances: 1}, goGuest(b, "upper"))
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
	spec := &FuncSpec{Export: "upper", ABI: udf.ABIBatch, Args: []udf.Type{vc}, Result: vc}
	runEngine(b, e, spec, in)
}

// runEngine times e.call on one input region and reports rows/s for the
// 1024-row batches these benchmarks use.
func runEngine(b *testing.B, e *engine, spec *FuncSpec, in []byte) {
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

// BenchmarkLoadGoGuest is what a new pod waits for when a spare process
// is ready: handing a 2 MB Go guest, its compilation cache precompiled, to
// a spawned worker until an instance is warm; jailed vs without the jail.
func BenchmarkLoadGoGuest(b *testing.B) {
	wasm := goGuest(b, "upper")
	dir := b.TempDir()
	cfg := testConfig(b, wasm)
	cfg.CacheDir, cfg.MemoryLimitPages = dir, 4096
	if err := Precompile(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	for _, jailed := range []bool{true, false} {
		name := "jailed"
		c := cfg
		if !jailed {
			name = "unjailed"
			c = unjailed(c)
		}
		b.Run(name, func(b *testing.B) {
			if jailed && !canJail() {
				b.Skip("the jail needs root")
			}
			var load time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				w, err := spawn(c)
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond) // as a spare: started ahead of need
				b.StartTimer()
				if err := w.assign(context.Background(), c); err != nil {
					b.Fatal(err)
				}
				load += w.LoadDuration()
				b.StopTimer()
				w.Close(context.Background())
				b.StartTimer()
			}
			b.ReportMetric(float64(load.Microseconds())/1000/float64(b.N), "load-ms")
		})
	}
}
