package artifacts

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/internal/wasmenc"
)

// peakHeapGrowth runs f and reports how far the heap in use rose above
// where it was before, sampled every millisecond.
func peakHeapGrowth(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	<-sampled
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

// TestCommitMemoryBounded: a module of one function body near the size
// limit (7.6 MB of i32.const/drop) once made the host's validation (wazero's
// interpreter compile) grow the heap by ~1 GiB. With the compile out of
// process, the host only walks the module: its heap grows by a small
// multiple of the module's size, also for the most types, functions and
// exports a module may have.
func TestCommitMemoryBounded(t *testing.T) {
	cases := map[string][]byte{
		"one 7.6 MB function body": wasmtest.OneFunc(0, wasmenc.Rep(2_540_000, 0x41, 0x00, 0x1a)),
		// At the scan's limits on types and on functions × exports.
		"a million types":                  wasmtest.ShapeNamed("many types").Build(maxTypes),
		"a million functions, 500 exports": wasmtest.Functions(maxFunctions, maxExportsOfMostFunctions, wasmtest.Body()),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 0)
			compiled := 0
			e.reopen(Config{Audit: e.aud, Precompile: func(ctx context.Context, wasm []byte, dir string) error {
				compiled++ // out of process in the server: a jailed worker
				return nil
			}})
			up := e.createUpload(data)
			e.putOK(up, data)
			var err error
			grew := peakHeapGrowth(func() { _, err = e.store.Commit(e.ctx, up.ID, "admin", "") })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("module %d bytes: heap grew by %d MiB during Commit", len(data), grew>>20)
			if limit := uint64(8*len(data) + 32<<20); grew > limit {
				t.Fatalf("Commit of a %d-byte module grew the heap by %d MiB, more than %d MiB", len(data), grew>>20, limit>>20)
			}
			if compiled != 1 {
				t.Fatalf("Precompile called %d times", compiled)
			}
		})
	}
}

// The scan's limits (wasmscan) that TestCommitMemoryBounded's modules are
// at: 10^6 types or functions, 5×10^8 for functions × exports.
const (
	maxTypes                  = 1_000_000
	maxFunctions              = 1_000_000
	maxExportsOfMostFunctions = 500
)

// blockingCompiler is a Precompile double that blocks until released and
// counts how many calls run at once.
type blockingCompiler struct {
	release    chan struct{}
	running    atomic.Int32
	maxRunning atomic.Int32
	entered    chan struct{}
	calls      atomic.Int32
}

func newBlockingCompiler() *blockingCompiler {
	return &blockingCompiler{release: make(chan struct{}), entered: make(chan struct{}, 100)}
}

func (b *blockingCompiler) Precompile(ctx context.Context, wasm []byte, dir string) error {
	n := b.running.Add(1)
	defer b.running.Add(-1)
	for {
		m := b.maxRunning.Load()
		if n <= m || b.maxRunning.CompareAndSwap(m, n) {
			break
		}
	}
	b.calls.Add(1)
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// distinctModule is addModule with a custom section making its bytes
// (and digest) its own.
func distinctModule(i int) []byte {
	return append(wasmtest.Add(), wasmenc.Section(wasmenc.SecCustom, wasmenc.Name("n"), wasmenc.ULEB128(uint32(i)))...)
}

// TestCompileCap: at most MaxCompiles compiles run at once; a Commit that
// finds every slot taken for CompileQueueWait fails with ErrBusy and a
// retry hint, leaves its upload as it was, and succeeds when retried later.
func TestCompileCap(t *testing.T) {
	e := newEnv(t, 0)
	bc := newBlockingCompiler()
	const slots = 2
	const queueWait = 300 * time.Millisecond
	e.reopen(Config{Audit: e.aud, Precompile: bc.Precompile, MaxCompiles: slots, CompileQueueWait: queueWait})

	ups := e.stageDistinct(slots + 1)
	wait := e.commitAsync(ups[:slots])
	for range slots {
		<-bc.entered
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second) // no cap: it would block in Precompile
	defer cancel()
	_, err := e.store.Commit(ctx, ups[slots].ID, "admin", "")
	waited := time.Since(start)
	var busy *BusyError
	if !errors.Is(err, ErrBusy) || !errors.As(err, &busy) || busy.RetryAfter <= 0 || busy.Running != slots {
		t.Fatalf("commit past the cap: %v", err)
	}
	if waited < queueWait {
		t.Fatalf("refused after %s, before the queue wait of %s", waited, queueWait)
	}
	if rec := e.uploadState(ups[slots].ID); rec.State != stateReceived {
		t.Fatalf("refused commit changed the upload: %+v", rec)
	}
	if c := e.counts(); c.staged != slots+1 || c.objects != 0 || c.metas != 0 {
		t.Fatalf("after the refused commit: %+v", c)
	}

	close(bc.release)
	for i, err := range wait() {
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if _, err := e.store.Commit(e.ctx, ups[slots].ID, "admin", ""); err != nil {
		t.Fatalf("retried commit: %v", err)
	}
	if m := bc.maxRunning.Load(); m != slots {
		t.Fatalf("%d compiles ran at once, cap %d", m, slots)
	}
}

// TestCompileCapQueues: commits beyond the cap wait for a slot and all go
// through, never more than the cap at a time.
func TestCompileCapQueues(t *testing.T) {
	e := newEnv(t, 0)
	bc := newBlockingCompiler()
	const slots, n = 2, 6
	e.reopen(Config{Audit: e.aud, Precompile: bc.Precompile, MaxCompiles: slots, CompileQueueWait: time.Minute})
	wait := e.commitAsync(e.stageDistinct(n))
	for range slots {
		<-bc.entered
	}
	time.Sleep(50 * time.Millisecond) // let the others pile up behind
	close(bc.release)
	for i, err := range wait() {
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if m, c := bc.maxRunning.Load(), bc.calls.Load(); m > slots || c != n {
		t.Fatalf("%d compiles at once (cap %d), %d calls (want %d)", m, slots, c, n)
	}
}

// stageDistinct uploads n different valid modules, ready to commit.
func (e *env) stageDistinct(n int) []Upload {
	ups := make([]Upload, n)
	for i := range ups {
		data := distinctModule(i)
		ups[i] = e.createUpload(data)
		e.putOK(ups[i], data)
	}
	return ups
}

// commitAsync commits every upload at once; wait returns their errors, in
// order, once all have returned.
func (e *env) commitAsync(ups []Upload) (wait func() []error) {
	var wg sync.WaitGroup
	errs := make([]error, len(ups))
	for i := range ups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.store.Commit(e.ctx, ups[i].ID, "admin", "")
		}()
	}
	return func() []error { wg.Wait(); return errs }
}
