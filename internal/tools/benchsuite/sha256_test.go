package benchsuite

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/abi/abipb"
	"github.com/udfhost/udfhost/internal/udf"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

const (
	rows      = 1024
	valueSize = 1024
)

// values returns one BYTES column of rows random values of valueSize bytes.
func values() *udfhostv1.Batch {
	rng := rand.New(rand.NewPCG(7, 7))
	col := &udfhostv1.Column{Type: udfhostv1.SqlType_TYPE_BYTES}
	col.Values = make([]byte, rows*valueSize)
	for i := range col.Values {
		col.Values[i] = byte(rng.Uint32())
	}
	for r := 0; r <= rows; r++ {
		col.Offsets = binary.LittleEndian.AppendUint32(col.Offsets, uint32(r*valueSize))
	}
	return &udfhostv1.Batch{Rows: rows, Columns: []*udfhostv1.Column{col}}
}

// BenchmarkSHA256Native is the UDF's work in native Go: hex(sha256(v)) for
// every value. Run with -tags purego for Go's portable implementation,
// which is what a wasm guest gets.
func BenchmarkSHA256Native(b *testing.B) {
	col := values().Columns[0]
	out := make([]string, rows)
	b.SetBytes(rows * valueSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rows; r++ {
			sum := sha256.Sum256(col.Values[r*valueSize : (r+1)*valueSize])
			out[r] = hex.EncodeToString(sum[:])
		}
	}
	b.ReportMetric(float64(b.N)*rows/b.Elapsed().Seconds(), "rows/s")
}

var (
	guestOnce sync.Once
	guestWasm []byte
	guestErr  error
)

func guest(b *testing.B) []byte {
	guestOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		dir, err := os.MkdirTemp("", "benchsuite-")
		if err != nil {
			guestErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "sha256hex.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./examples/go/sha256hex")
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..", "..")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			guestErr = err
			b.Logf("%s", msg)
			return
		}
		guestWasm, guestErr = os.ReadFile(out)
	})
	if guestErr != nil {
		b.Fatal(guestErr)
	}
	return guestWasm
}

// BenchmarkSHA256Wazero runs the sha256hex example guest in-process with
// plain wazero and the batch ABI: no worker process, no IPC, no gRPC. The
// service's throughput for the same function is measured against it.
func BenchmarkSHA256Wazero(b *testing.B) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	mod, err := rt.InstantiateModule(ctx, mustCompile(b, rt, guest(b)), wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		b.Fatal(err)
	}
	in := abi.AppendInput(nil, abipb.FromBatch(values()))
	alloc, fn := mod.ExportedFunction("udfhost_alloc"), mod.ExportedFunction("sha256hex")
	res, err := alloc.Call(ctx, uint64(len(in)))
	if err != nil {
		b.Fatal(err)
	}
	ptr := uint32(res[0])
	var dst []byte
	b.SetBytes(rows * valueSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mod.Memory().Write(ptr, in)
		res, err := fn.Call(ctx, uint64(ptr), uint64(len(in)))
		if err != nil {
			b.Fatal(err)
		}
		mem, _ := mod.Memory().Read(0, mod.Memory().Size())
		if dst, err = abi.CopyOutput(dst[:0], mem, uint32(res[0]), uint32(res[0]>>32), rows, udf.Varchar); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*rows/b.Elapsed().Seconds(), "rows/s")
}

func mustCompile(b *testing.B, rt wazero.Runtime, wasm []byte) wazero.CompiledModule {
	cm, err := rt.CompileModule(context.Background(), wasm)
	if err != nil {
		b.Fatal(err)
	}
	return cm
}
