package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
)

// sample is what one child measured.
type sample struct {
	Seconds       float64 // wall time of the compile
	PeakRSS       int64   // the child's peak resident set (VmHWM)
	PeakHeap      int64   // peak of the Go heap's objects during the compile
	CacheBytes    int64   // the compilation cache written (the worker keeps it in a tmpfs in its cgroup)
	InstanceBytes int64   // heap an instance kept, for shapes with a per-instance model
	Killed        string  // why the parent killed the child, if it did
}

// memory is what the compile worker's cgroup would be charged.
func (s sample) memory() int64 { return s.PeakRSS + s.CacheBytes }

// measure compiles s.Build(n) in a child process of one core and returns
// what it measured. The child is killed at the compile worker's memory or
// time budget, as the worker would be. It reads the module from a file,
// as the worker receives it: one copy, no builder's garbage.
func measure(s shape, n int) (sample, error) {
	self, err := os.Executable()
	if err != nil {
		return sample{}, err
	}
	f, err := os.CreateTemp("", "costmodel-*.wasm")
	if err != nil {
		return sample{}, err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(s.Build(n))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return sample{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), compileSeconds*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-child", f.Name(), "-instance="+strconv.FormatBool(s.perInstance != nil))
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(compileCores), "GOGC=", "GOMEMLIMIT=")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		return sample{}, fmt.Errorf("start child: %w", err)
	}
	var overMemory atomic.Bool
	done := make(chan struct{})
	go func() { // the cgroup's memory limit, approximately
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if rss, err := procStatus(cmd.Process.Pid, "VmRSS"); err == nil && rss > compileMemory {
				overMemory.Store(true)
				cmd.Process.Signal(syscall.SIGKILL)
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	switch {
	case overMemory.Load():
		return sample{Killed: fmt.Sprintf("resident set over %d MiB", compileMemory>>20)}, nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return sample{Killed: fmt.Sprintf("compiling took longer than %d s", compileSeconds)}, nil
	case err != nil:
		return sample{}, fmt.Errorf("%s n=%d: child: %v: %s", s.Name, n, err, strings.TrimSpace(stderr.String()))
	}
	var res sample
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return sample{}, fmt.Errorf("%s n=%d: child's answer: %w", s.Name, n, err)
	}
	return res, nil
}

// childMain is the child: it compiles the module in file as the compile
// worker does, and prints what it measured as JSON.
func childMain(file string, instance bool) error {
	wasm, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	res, err := compile(wasm, instance)
	if err != nil {
		return err
	}
	if res.PeakRSS, err = procStatus(os.Getpid(), "VmHWM"); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// compile compiles wasm with wazero's optimizing compiler, the interrupt
// checks on (WithCloseOnContextDone: the costlier of the workers' two
// configurations) and a compilation cache in a directory, as the compile
// worker does, then instantiates it once if instance.
func compile(wasm []byte, instance bool) (sample, error) {
	dir, err := os.MkdirTemp("", "costmodel-cache-")
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return sample{}, err
	}
	defer cache.Close(ctx)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(true).WithCompilationCache(cache))
	defer rt.Close(ctx)

	runtime.GC()
	stop := sampleHeap()
	start := time.Now()
	cm, err := rt.CompileModule(ctx, wasm)
	var res sample
	res.Seconds = time.Since(start).Seconds()
	res.PeakHeap = stop()
	if err != nil {
		return sample{}, fmt.Errorf("wazero refuses the module: %w", err)
	}
	if res.CacheBytes, err = dirSize(dir); err != nil {
		return sample{}, err
	}
	if instance {
		before := heapAfterGC()
		mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			return sample{}, fmt.Errorf("instantiate: %w", err)
		}
		res.InstanceBytes = int64(heapAfterGC() - before)
		runtime.KeepAlive(mod)
	}
	return res, nil
}

// sampleHeap samples the heap's objects every millisecond until the
// function it returns is called, which returns their peak.
func sampleHeap() (stop func() int64) {
	const name = "/memory/classes/heap/objects:bytes"
	var peak atomic.Int64
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		m := []metrics.Sample{{Name: name}}
		for {
			metrics.Read(m)
			if v := int64(m[0].Value.Uint64()); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	})
	return total, err
}

// procStatus reads a "kB" field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
