package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/sandbox/internal/jail"
	"github.com/udfhost/udfhost/sandbox/internal/testmod"
)

// TestMeasureSyscalls is how the seccomp allowlist
// (sandbox/internal/jail/seccomp.profile) is measured, not guessed:
// workers run under strace -f with every layer but the filter,
// through what a worker does after the filter would be installed (calls
// of both ABIs, concurrent batches, traps, deadlines in both interrupt
// modes, memory growth, a Go guest, driver compiles, orderly stop). It
// prints each syscall traced after the marker with its count.
// scripts/measure-syscalls.sh runs it; it is skipped otherwise.
func TestMeasureSyscalls(t *testing.T) {
	out := os.Getenv("UDFHOST_MEASURE_SYSCALLS")
	if out == "" {
		t.Skip("set by scripts/measure-syscalls.sh")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := filepath.Abs(os.Args[0])
	// strace runs as the worker's uid: it writes beside out, not in a
	// private temporary directory.
	dir, err := os.MkdirTemp(filepath.Dir(out), "traces-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	var traces []string
	n := 0
	start := func(wasm []byte, precise bool) *Worker {
		n++
		trace := filepath.Join(dir, fmt.Sprintf("trace.%d", n))
		traces = append(traces, trace)
		cfg := testConfig(t, wasm)
		cfg.Exe, cfg.Args = strace, []string{"-f", "-qq", "-o", trace, "--", exe, "worker"}
		cfg.MeasureSyscalls, cfg.Strict, cfg.PreciseInterrupt = true, false, precise
		cfg.MaxInstances, cfg.MemoryLimitPages = 4, 64
		return startWorker(t, cfg)
	}
	ctx := context.Background()
	wat := testmod.WAT(t, testmod.AddSpinBoomWAT)
	for _, precise := range []bool{false, true} {
		w := start(wat, precise)
		spec := &FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: bigint2, Result: bigint2[0]}
		if err := w.Prepare(ctx, spec); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 300; i++ {
					w.Call(ctx, spec, time.Second, testmod.BigintInput(make([]int64, 1024), make([]int64, 1024)))
				}
			}()
		}
		wg.Wait()
		w.Call(ctx, &FuncSpec{Export: "boom", ABI: udf.ABIDirect, Args: bigint2, Result: bigint2[0]}, time.Second, testmod.BigintInput([]int64{1}, []int64{1}))
		if precise {
			w.Call(ctx, &FuncSpec{Export: "spin", ABI: udf.ABIDirect, Args: bigint2, Result: bigint2[0]}, 100*time.Millisecond, testmod.BigintInput([]int64{-1}, []int64{1}))
		}
		w.Close(ctx)
	}
	grow := testmod.WAT(t, `(module (memory 1)
  (func (export "grow") (param i64 i64) (result i64)
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (i64.const 0)))`)
	w := start(grow, false)
	w.Call(ctx, &FuncSpec{Export: "grow", ABI: udf.ABIDirect, Args: bigint2, Result: bigint2[0]}, time.Second, testmod.BigintInput([]int64{1}, []int64{1}))
	w.Close(ctx)

	g := start(testmod.GoGuest(t, "affine"), false)
	big := bigint2[0]
	aff := &FuncSpec{Export: "affine", ABI: udf.ABIBatch, Args: []udf.Type{big, big, big}, Result: big}
	in := abi.AppendInput(nil, testmod.BigintBatch(3, 1024))
	for i := 0; i < 2000; i++ {
		if _, err := g.Call(ctx, aff, time.Second, in); err != nil {
			t.Fatal(err)
		}
	}
	g.Close(ctx)

	// Validation: a compile-only worker compiles a Go guest and a module
	// with direct-ABI exports, and answers with its cache.
	for _, wasm := range [][]byte{testmod.GoGuest(t, "upper"), wat} {
		n++
		trace := filepath.Join(dir, fmt.Sprintf("trace.%d", n))
		traces = append(traces, trace)
		cfg := testConfig(t, wasm)
		cfg.Exe, cfg.Args = strace, []string{"-f", "-qq", "-o", trace, "--", exe, "worker"}
		cfg.MeasureSyscalls, cfg.Strict, cfg.CacheDir, cfg.MemoryLimitPages = true, false, t.TempDir(), 4096
		if err := Precompile(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}

	counts := map[string]int{}
	for _, tr := range traces {
		countAfterMarker(t, tr, counts)
	}
	names := make([]string, 0, len(counts))
	for s := range counts {
		names = append(names, s)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, s := range names {
		fmt.Fprintf(&b, "%-20s %d\n", s, counts[s])
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("syscalls after the marker:\n%s", b.String())
}

var straceLine = regexp.MustCompile(`^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]`)

func countAfterMarker(t *testing.T, path string, counts map[string]int) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	after := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !after {
			after = strings.Contains(line, jail.MeasureMarker)
			continue
		}
		if m := straceLine.FindStringSubmatch(line); m != nil && !strings.Contains(line, "resumed>") {
			counts[m[1]]++
		}
	}
	if !after {
		t.Fatalf("%s: marker %s not traced", path, jail.MeasureMarker)
	}
}
