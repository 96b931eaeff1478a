package pods

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/udfhost/udfhost/sandbox"
)

// Worker is what the registry needs of a worker process; *sandbox.Worker
// is one.
type Worker interface {
	// Dead reports whether the worker is gone or being killed.
	Dead() bool
	// Done is closed when the process is gone; Err then says why.
	Done() <-chan struct{}
	Err() error
	// InFlight is how many calls it has not answered yet.
	InFlight() int
	// Close stops it, letting calls in flight finish.
	Close(ctx context.Context) error
}

// StartOf starts a worker for an identity; the registry's owner decides
// limits and where the module comes from.
type StartOf[W Worker] func(ctx context.Context, id Identity) (W, error)

// ExitOf is told when a worker is gone: why the registry stopped it (or
// Exited if it did not), and the worker's own error (nil after an orderly
// stop).
type ExitOf[W Worker] func(id Identity, w W, why StopReason, err error)

// StartFunc and ExitFunc are StartOf and ExitOf for sandbox workers.
type (
	StartFunc = StartOf[*sandbox.Worker]
	ExitFunc  = ExitOf[*sandbox.Worker]
)

// StopReason says why a worker stopped.
type StopReason string

// Stop reasons.
const (
	// Exited: the registry did not stop it (it died, or was killed for a
	// batch's deadline).
	Exited StopReason = "exited"
	// Stopped: Stop was called (no function needs the pod any more).
	Stopped StopReason = "stopped"
	// Evicted: it was idle and the least recently used when a new pod
	// needed room under a cap; it is started again on its next call.
	Evicted StopReason = "evicted"
	// Shutdown: the registry was closed.
	Shutdown StopReason = "shutdown"
)

// ErrClosed is returned once the registry is shutting down.
var ErrClosed = errors.New("pod registry is closed")

// ErrCapacity is wrapped by a *CapError: a new pod was refused because a
// cap on live pods was reached and every live pod was busy.
var ErrCapacity = errors.New("too many live pods")

// CapError refuses a new pod at a cap; it names the cap and says when to
// retry.
type CapError struct {
	ID    Identity
	Scope string // "host" or `compute pool "env/pool"`
	Live  int    // pods live in that scope
	Max   int    // its cap
	After time.Duration
}

func (e *CapError) Error() string {
	return fmt.Sprintf("%s: %s has %d live pods, its cap is %d, and every one is busy; retry after %s",
		ErrCapacity, e.Scope, e.Live, e.Max, e.After)
}

func (e *CapError) Unwrap() error { return ErrCapacity }

// RetryAfter is how long the caller should wait before trying again.
func (e *CapError) RetryAfter() time.Duration { return e.After }

// Caps bound the pods that are live (starting or running) at once.
type Caps struct {
	// MaxLive caps live pods host-wide; 0: no cap.
	MaxLive int
	// PoolMax returns the cap of the compute pool (Org, Env, Pool) of id;
	// 0 or a nil PoolMax: no cap.
	PoolMax func(id Identity) int
	// RetryAfter is the hint given with a refusal; 0: one second.
	RetryAfter time.Duration
	// Refused, if set, is told of every refused start.
	Refused func(id Identity, err *CapError)
}

// Keeper keeps at most one live worker per identity, starting it on first
// use and again after it dies or was evicted. Under a cap, a new pod
// evicts the least recently used idle pod (no call in flight) of the full
// scope, or is refused with a *CapError when every pod there is busy.
type Keeper[W Worker] struct {
	start  StartOf[W]
	onExit ExitOf[W]
	caps   Caps

	mu     sync.Mutex
	pods   map[Identity]*pod[W]
	clock  uint64 // ticks on every Get: the order of use
	closed bool
	wg     sync.WaitGroup
}

// Registry is the Keeper of sandbox workers.
type Registry = Keeper[*sandbox.Worker]

type pod[W Worker] struct {
	ready chan struct{} // closed when w/err are set
	w     W
	err   error
	used  uint64     // clock at its last Get
	why   StopReason // set (under mu) when the registry stops it
}

// NewRegistry returns a registry of sandbox workers without caps.
func NewRegistry(start StartFunc, onExit ExitFunc) *Registry {
	return New(start, onExit, Caps{})
}

// New returns a registry that starts workers with start, reports their
// exits to onExit (which may be nil) and keeps live pods within caps.
func New[W Worker](start StartOf[W], onExit ExitOf[W], caps Caps) *Keeper[W] {
	if caps.RetryAfter <= 0 {
		caps.RetryAfter = time.Second
	}
	return &Keeper[W]{start: start, onExit: onExit, caps: caps, pods: map[Identity]*pod[W]{}}
}

// Get returns the live worker for id, starting one if there is none.
// Concurrent callers for the same identity share one start; a failed
// start is not remembered (the next Get tries again).
func (r *Keeper[W]) Get(ctx context.Context, id Identity) (W, error) {
	var zero W
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return zero, ErrClosed
		}
		r.clock++
		p, ok := r.pods[id]
		if ok {
			p.used = r.clock
			r.mu.Unlock()
		} else {
			victim, cerr := r.makeRoom(id)
			if cerr != nil {
				r.mu.Unlock()
				if r.caps.Refused != nil {
					r.caps.Refused(id, cerr)
				}
				return zero, cerr
			}
			p = &pod[W]{ready: make(chan struct{}), used: r.clock}
			r.pods[id] = p
			r.mu.Unlock()
			if victim != nil {
				// Its memory is freed before the new pod claims its own.
				victim.w.Close(context.WithoutCancel(ctx))
			}
			r.launch(ctx, id, p)
		}
		select {
		case <-p.ready:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
		if p.err != nil {
			return zero, p.err
		}
		if p.w.Dead() {
			// Died or being killed since; try again with a fresh one.
			r.forget(id, p)
			continue
		}
		return p.w, nil
	}
}

// makeRoom checks the caps for a new pod of id and, if one is reached,
// takes the least recently used idle pod of the full scope out of the
// registry (marked evicted) for the caller to stop. Called with mu held.
func (r *Keeper[W]) makeRoom(id Identity) (*pod[W], *CapError) {
	// Pods whose worker is gone or failed to start hold nothing: drop
	// them now rather than count them.
	for oid, p := range r.pods {
		if isReady(p) && (p.err != nil || p.w.Dead()) {
			delete(r.pods, oid)
		}
	}
	poolMax := 0
	if r.caps.PoolMax != nil {
		poolMax = r.caps.PoolMax(id)
	}
	inPool := 0
	for oid := range r.pods {
		if samePool(oid, id) {
			inPool++
		}
	}
	var full *CapError
	switch {
	case poolMax > 0 && inPool >= poolMax:
		full = &CapError{ID: id, Scope: fmt.Sprintf("compute pool %q", id.Env+"/"+id.Pool), Live: inPool, Max: poolMax}
	case r.caps.MaxLive > 0 && len(r.pods) >= r.caps.MaxLive:
		full = &CapError{ID: id, Scope: "the host", Live: len(r.pods), Max: r.caps.MaxLive}
	default:
		return nil, nil
	}
	var victim *pod[W]
	var victimID Identity
	for oid, p := range r.pods {
		if full.Scope != "the host" && !samePool(oid, id) {
			continue // only a pod of the full pool makes room in it
		}
		if !isReady(p) || p.w.InFlight() > 0 {
			continue // starting or busy
		}
		if victim == nil || p.used < victim.used {
			victim, victimID = p, oid
		}
	}
	if victim == nil {
		full.After = r.caps.RetryAfter
		return nil, full
	}
	victim.why = Evicted
	delete(r.pods, victimID)
	return victim, nil
}

func isReady[W Worker](p *pod[W]) bool {
	select {
	case <-p.ready:
		return true
	default:
		return false
	}
}

func samePool(a, b Identity) bool {
	return a.Org == b.Org && a.Env == b.Env && a.Pool == b.Pool
}

func (r *Keeper[W]) launch(ctx context.Context, id Identity, p *pod[W]) {
	// The start must not die with the first caller's context: other callers
	// wait on it too.
	w, err := r.start(context.WithoutCancel(ctx), id)
	p.w, p.err = w, err
	close(p.ready)
	if err != nil {
		r.forget(id, p)
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		<-w.Done()
		r.forget(id, p)
		r.mu.Lock()
		why := p.why
		r.mu.Unlock()
		if why == "" {
			why = Exited
		}
		if r.onExit != nil {
			r.onExit(id, w, why, w.Err())
		}
	}()
}

func (r *Keeper[W]) forget(id Identity, p *pod[W]) {
	r.mu.Lock()
	if r.pods[id] == p {
		delete(r.pods, id)
	}
	r.mu.Unlock()
}

// Stop stops the worker of id, if any, letting in-flight batches finish.
func (r *Keeper[W]) Stop(ctx context.Context, id Identity) {
	r.mu.Lock()
	p, ok := r.pods[id]
	if ok {
		delete(r.pods, id)
		p.why = Stopped
	}
	r.mu.Unlock()
	if ok {
		<-p.ready
		if p.err == nil {
			p.w.Close(ctx)
		}
	}
}

// Live returns the identities that have a worker now (starting or
// running).
func (r *Keeper[W]) Live() []Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]Identity, 0, len(r.pods))
	for id := range r.pods {
		ids = append(ids, id)
	}
	return ids
}

// Close stops every worker and waits for their exits to be reported.
func (r *Keeper[W]) Close(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	pods := r.pods
	r.pods = map[Identity]*pod[W]{}
	for _, p := range pods {
		p.why = Shutdown
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-p.ready
			if p.err == nil {
				p.w.Close(ctx)
			}
		}()
	}
	wg.Wait()
	r.wg.Wait()
}
