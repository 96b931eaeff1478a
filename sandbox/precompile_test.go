package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udfhost/udfhost/sandbox/internal/testmod"
)

func TestPrecompileStoresTheCacheWorkersLoad(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT))
	cfg.CacheDir = dir
	if err := Precompile(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	if len(files) != 1 {
		t.Fatalf("cache holds %v, want one compiled module", files)
	}
	w := startWorker(t, cfg)
	if got, err := call(w, "add", time.Second, []int64{40}, []int64{2}); err != nil || got[0] != 42 {
		t.Fatalf("worker from the precompiled cache: %v %v", got, err)
	}
}

func TestPrecompileRefusesWhatDoesNotCompile(t *testing.T) {
	// 20,000 sequential ifs: a few hundred KB that keep wazero's
	// optimizing compiler busy for many seconds (found by profiling).
	var b strings.Builder
	b.WriteString(`(module (func (export "f") (param i32) (result i32)`)
	for i := 0; i < 20000; i++ {
		b.WriteString(` (if (local.get 0) (then (local.set 0 (i32.add (local.get 0) (i32.const 1)))))`)
	}
	b.WriteString(` (local.get 0)))`)
	for name, tc := range map[string]struct {
		wasm    []byte
		timeout time.Duration
		want    string
	}{
		"not wasm":     {[]byte("\x00asm\x01\x00\x00\x00\x01\xff"), time.Minute, "compile module"},
		"compile bomb": {testmod.WAT(t, b.String()), time.Second, "took longer than 1s"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, tc.wasm)
			cfg.CacheDir, cfg.StartTimeout = t.TempDir(), tc.timeout
			start := time.Now()
			err := Precompile(context.Background(), cfg)
			if !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrCompile containing %q", err, tc.want)
			}
			if time.Since(start) > tc.timeout+2*time.Second {
				t.Fatalf("took %s", time.Since(start))
			}
			if files, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "*", "*")); len(files) != 0 {
				t.Fatalf("a refused module left %v", files)
			}
		})
	}
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Fatal(err)
	}
}
