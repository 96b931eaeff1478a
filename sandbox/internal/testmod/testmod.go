// Package testmod builds what the sandbox's tests and benchmarks run: wasm
// modules from WAT (with wabt's wat2wasm), the Go examples compiled for
// wasip1, and input batches. Only test code imports it; it runs in the
// test binary, on the host side.
package testmod

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/udf"
)

// AddSpinBoomWAT has three (BIGINT, BIGINT) -> BIGINT exports: add, spin
// (loops forever on a negative first argument, else returns it) and boom
// (traps).
const AddSpinBoomWAT = `(module
  (func (export "add") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
  (func (export "spin") (param i64 i64) (result i64)
    (if (i64.lt_s (local.get 0) (i64.const 0)) (then (loop $l (br $l))))
    (local.get 0))
  (func (export "boom") (param i64 i64) (result i64) unreachable))`

// WAT compiles src with wat2wasm.
func WAT(t testing.TB, src string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	os.WriteFile(in, []byte(src), 0o644)
	if b, err := exec.Command("wat2wasm", "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm (make test installs wabt): %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	goGuestOnce sync.Once
	goGuestDir  string
	goGuestErr  error
)

// GoGuest builds examples/go/<name> for wasip1 once per test binary.
func GoGuest(tb testing.TB, name string) []byte {
	tb.Helper()
	goGuestOnce.Do(func() { goGuestDir, goGuestErr = os.MkdirTemp("", "udfhost-guests-") })
	if goGuestErr != nil {
		tb.Fatal(goGuestErr)
	}
	out := filepath.Join(goGuestDir, name+".wasm")
	if _, err := os.Stat(out); err != nil {
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./examples/go/"+name)
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..", "..")
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

// BigintBatch is a batch of cols BIGINT columns of rows rows, row r of
// column c holding r+c.
func BigintBatch(cols, rows int) *abi.Batch {
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

// BigintInput lays out a two-BIGINT-column batch as an input region.
func BigintInput(a, b []int64) []byte {
	col := func(v []int64) *abi.Column {
		c := &abi.Column{Type: udf.BigInt}
		for _, x := range v {
			c.Values = binary.LittleEndian.AppendUint64(c.Values, uint64(x))
		}
		return c
	}
	batch := &abi.Batch{Rows: uint32(len(a)), Columns: []*abi.Column{col(a), col(b)}}
	return abi.AppendInput(nil, batch)
}
