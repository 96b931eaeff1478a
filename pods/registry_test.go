package pods

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSPIFFEID(t *testing.T) {
	id := Identity{Org: "acme", Env: "prod", Pool: "etl", Digest: "sha256:ab12"}
	if got, want := id.SPIFFEID(), "spiffe://udfhost.local/org/acme/env/prod/pool/etl/artifact/sha256-ab12"; got != want {
		t.Errorf("SPIFFEID = %s, want %s", got, want)
	}
	if id.String() != id.SPIFFEID() {
		t.Errorf("String %s differs from SPIFFEID", id.String())
	}
}

// fakeWorker stands in for a worker process: the registry's logic needs
// only its lifecycle and whether it is busy.
type fakeWorker struct {
	id       Identity
	inFlight atomic.Int32
	once     sync.Once
	done     chan struct{}
	err      error
	onDie    func() // called once, as it dies
}

func (w *fakeWorker) Dead() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}
func (w *fakeWorker) Done() <-chan struct{} { return w.done }
func (w *fakeWorker) Err() error            { <-w.done; return w.err }
func (w *fakeWorker) InFlight() int         { return int(w.inFlight.Load()) }
func (w *fakeWorker) Close(context.Context) error {
	w.die(nil)
	return nil
}
func (w *fakeWorker) die(err error) {
	w.once.Do(func() {
		if w.onDie != nil {
			w.onDie()
		}
		w.err = err
		close(w.done)
	})
}

type exit struct {
	id  Identity
	why StopReason
	err error
}

// harness is a registry of fake workers that records starts and exits.
type harness struct {
	t      *testing.T
	r      *Keeper[*fakeWorker]
	mu     sync.Mutex
	starts map[Identity]int
	exits  chan exit
	// fail, if set, makes a start fail.
	fail func(id Identity) error
}

func newHarness(t *testing.T, caps Caps) *harness {
	h := &harness{t: t, starts: map[Identity]int{}, exits: make(chan exit, 100)}
	h.r = New(func(ctx context.Context, id Identity) (*fakeWorker, error) {
		h.mu.Lock()
		h.starts[id]++
		fail := h.fail
		h.mu.Unlock()
		if fail != nil {
			if err := fail(id); err != nil {
				return nil, err
			}
		}
		return &fakeWorker{id: id, done: make(chan struct{})}, nil
	}, func(id Identity, w *fakeWorker, why StopReason, err error) {
		h.exits <- exit{id, why, err}
	}, caps)
	t.Cleanup(func() { h.r.Close(context.Background()) })
	return h
}

func (h *harness) get(id Identity) *fakeWorker {
	h.t.Helper()
	w, err := h.r.Get(context.Background(), id)
	if err != nil {
		h.t.Fatalf("Get(%s): %v", id.Digest, err)
	}
	return w
}

func (h *harness) startsOf(id Identity) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.starts[id]
}

// nextExit waits for the next reported exit.
func (h *harness) nextExit() exit {
	h.t.Helper()
	select {
	case e := <-h.exits:
		return e
	case <-time.After(10 * time.Second):
		h.t.Fatal("no exit reported")
		return exit{}
	}
}

func (h *harness) live() []string {
	var out []string
	for _, id := range h.r.Live() {
		out = append(out, id.Pool+"/"+id.Digest)
	}
	slices.Sort(out)
	return out
}

func ident(pool, digest string) Identity {
	return Identity{Org: "default", Env: "default", Pool: pool, Digest: digest}
}

func TestGetSharesOneStart(t *testing.T) {
	gate := make(chan struct{})
	var starts atomic.Int32
	r := New(func(ctx context.Context, id Identity) (*fakeWorker, error) {
		starts.Add(1)
		<-gate
		return &fakeWorker{done: make(chan struct{})}, nil
	}, nil, Caps{})
	defer r.Close(context.Background())
	id := ident("default", "a")
	const callers = 16
	got := make(chan *fakeWorker, callers)
	for i := 0; i < callers; i++ {
		go func() {
			w, err := r.Get(context.Background(), id)
			if err != nil {
				t.Error(err)
			}
			got <- w
		}()
	}
	// Every caller is waiting on the one start (it cannot finish before
	// the gate opens); then all get the same worker.
	for len(r.Live()) == 0 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	first := <-got
	for i := 1; i < callers; i++ {
		if w := <-got; w != first {
			t.Fatal("callers got different workers")
		}
	}
	if n := starts.Load(); n != 1 {
		t.Errorf("%d starts for one identity, want 1", n)
	}
}

func TestStartFailureNotRemembered(t *testing.T) {
	h := newHarness(t, Caps{})
	boom := errors.New("no exec")
	h.fail = func(Identity) error { return boom }
	id := ident("default", "a")
	if _, err := h.r.Get(context.Background(), id); !errors.Is(err, boom) {
		t.Fatalf("Get = %v, want the start's error", err)
	}
	if live := h.live(); len(live) != 0 {
		t.Fatalf("a failed start is live: %v", live)
	}
	h.mu.Lock()
	h.fail = nil
	h.mu.Unlock()
	h.get(id)
	if n := h.startsOf(id); n != 2 {
		t.Errorf("%d starts, want 2 (the failure is not cached)", n)
	}
}

func TestStopLiveClose(t *testing.T) {
	h := newHarness(t, Caps{})
	a, b := ident("default", "a"), ident("default", "b")
	wa := h.get(a)
	if h.get(a) != wa {
		t.Fatal("second Get started another worker")
	}
	h.get(b)
	if got := h.live(); !slices.Equal(got, []string{"default/a", "default/b"}) {
		t.Fatalf("Live = %v", got)
	}
	h.r.Stop(context.Background(), a)
	if e := h.nextExit(); e.id != a || e.why != Stopped || e.err != nil {
		t.Errorf("exit %+v, want a stopped", e)
	}
	if got := h.live(); !slices.Equal(got, []string{"default/b"}) {
		t.Errorf("Live after Stop = %v", got)
	}
	h.r.Stop(context.Background(), a) // nothing to stop: no-op

	// A worker that dies on its own is reported and replaced on next use.
	wb := h.get(b)
	wb.die(errors.New("killed"))
	if e := h.nextExit(); e.id != b || e.why != Exited || e.err == nil {
		t.Errorf("exit %+v, want b exited with its error", e)
	}
	if h.get(b) == wb {
		t.Error("a dead worker was handed out")
	}

	h.r.Close(context.Background())
	if e := h.nextExit(); e.id != b || e.why != Shutdown {
		t.Errorf("exit %+v, want b shut down", e)
	}
	if _, err := h.r.Get(context.Background(), a); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
}

// TestEvictsLeastRecentlyUsedIdle: at the host cap a new pod evicts the
// idle pod used longest ago (not a busy one, however old), which starts
// again on its next use; with every pod busy the new one is refused,
// naming the cap, with a retry hint, and the refusal reported.
func TestEvictsLeastRecentlyUsedIdle(t *testing.T) {
	var refused []*CapError
	var mu sync.Mutex
	h := newHarness(t, Caps{MaxLive: 2, RetryAfter: 3 * time.Second, Refused: func(id Identity, err *CapError) {
		mu.Lock()
		refused = append(refused, err)
		mu.Unlock()
	}})
	a, b, c, d := ident("x", "a"), ident("y", "b"), ident("x", "c"), ident("y", "d")
	h.get(a)
	h.get(b)
	h.get(a) // b is now the least recently used
	h.get(c)
	if e := h.nextExit(); e.id != b || e.why != Evicted {
		t.Fatalf("exit %+v, want b evicted", e)
	}
	if got := h.live(); !slices.Equal(got, []string{"x/a", "x/c"}) {
		t.Fatalf("Live = %v", got)
	}

	// a is the least recently used but busy: c goes instead.
	wa := h.get(a)
	h.get(c)
	wa.inFlight.Store(1)
	h.get(b) // evicts c, not a
	if e := h.nextExit(); e.id != c || e.why != Evicted {
		t.Fatalf("exit %+v, want c evicted (a is busy)", e)
	}
	if n := h.startsOf(b); n != 2 {
		t.Errorf("b started %d times, want 2 (restarted after eviction)", n)
	}

	// Every live pod busy: refused.
	h.get(b).inFlight.Store(1)
	_, err := h.r.Get(context.Background(), d)
	var ce *CapError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCapacity) {
		t.Fatalf("Get at the cap with all busy = %v, want a *CapError", err)
	}
	if ce.Max != 2 || ce.Live != 2 || ce.RetryAfter() != 3*time.Second ||
		!strings.Contains(err.Error(), "the host has 2 live pods, its cap is 2, and every one is busy; retry after 3s") {
		t.Errorf("refusal %q %+v", err, ce)
	}
	mu.Lock()
	n := len(refused)
	mu.Unlock()
	if n != 1 {
		t.Errorf("%d refusals reported, want 1", n)
	}
	if h.startsOf(d) != 0 {
		t.Error("a refused pod was started")
	}
	// Room again once one is idle.
	wa.inFlight.Store(0)
	h.get(d)
	if e := h.nextExit(); e.id != a || e.why != Evicted {
		t.Errorf("exit %+v, want a evicted", e)
	}
}

// TestPoolCap: a full pool makes room only from its own pods; other pools
// are not touched, and a pool whose pods are all busy refuses even with
// room on the host.
func TestPoolCap(t *testing.T) {
	h := newHarness(t, Caps{MaxLive: 10, PoolMax: func(id Identity) int {
		if id.Pool == "small" {
			return 1
		}
		return 0
	}})
	s1, s2, big := ident("small", "1"), ident("small", "2"), ident("big", "b")
	h.get(s1)
	h.get(big) // more recent than s1, yet in another pool
	w2 := h.get(s2)
	if e := h.nextExit(); e.id != s1 || e.why != Evicted {
		t.Fatalf("exit %+v, want small/1 evicted", e)
	}
	if got := h.live(); !slices.Equal(got, []string{"big/b", "small/2"}) {
		t.Fatalf("Live = %v", got)
	}
	w2.inFlight.Store(1)
	_, err := h.r.Get(context.Background(), s1)
	if !errors.Is(err, ErrCapacity) || !strings.Contains(err.Error(), `compute pool "default/small" has 1 live pods, its cap is 1`) {
		t.Errorf("Get in a full, busy pool = %v", err)
	}
}

// TestDeadPodsDoNotCount: a pod whose worker died holds no room.
func TestDeadPodsDoNotCount(t *testing.T) {
	h := newHarness(t, Caps{MaxLive: 1})
	a, b := ident("x", "a"), ident("x", "b")
	wa := h.get(a)
	wa.inFlight.Store(1) // busy, then dies: not evictable, but gone
	wa.die(errors.New("crashed"))
	h.get(b)
	if e := h.nextExit(); e.id != a || e.why != Exited {
		t.Errorf("exit %+v, want a exited", e)
	}
}

// TestConcurrentGetsKeepTheCap: many callers for many identities never
// hold more live pods than the cap.
func TestConcurrentGetsKeepTheCap(t *testing.T) {
	const maxLive = 3
	var live, peak atomic.Int32
	r := New(func(ctx context.Context, id Identity) (*fakeWorker, error) {
		n := live.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		return &fakeWorker{done: make(chan struct{}), onDie: func() { live.Add(-1) }}, nil
	}, nil, Caps{MaxLive: maxLive})
	defer r.Close(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				id := ident("p", string(rune('a'+(i+j)%7)))
				if _, err := r.Get(context.Background(), id); err != nil && !errors.Is(err, ErrCapacity) {
					t.Error(err)
				}
				if n := len(r.Live()); n > maxLive {
					t.Errorf("%d live pods, cap %d", n, maxLive)
				}
			}
		}()
	}
	wg.Wait()
	// An evicted worker is closed before its successor starts.
	if p := peak.Load(); p > maxLive {
		t.Errorf("peak of %d workers alive, cap %d", p, maxLive)
	}
}
