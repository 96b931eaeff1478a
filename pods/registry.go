package pods

import (
	"context"
	"errors"
	"sync"

	"github.com/udfhost/udfhost/sandbox"
)

// StartFunc starts a worker for an identity; the registry's owner decides
// limits and where the module comes from.
type StartFunc func(ctx context.Context, id Identity) (*sandbox.Worker, error)

// ExitFunc is told when a worker is gone, with why (nil after an orderly
// stop).
type ExitFunc func(id Identity, w *sandbox.Worker, err error)

// ErrClosed is returned once the registry is shutting down.
var ErrClosed = errors.New("pod registry is closed")

// Registry keeps at most one live worker per identity, starting it on first
// use and again after it dies.
type Registry struct {
	start  StartFunc
	onExit ExitFunc

	mu     sync.Mutex
	pods   map[Identity]*pod
	closed bool
	wg     sync.WaitGroup
}

type pod struct {
	ready chan struct{} // closed when w/err are set
	w     *sandbox.Worker
	err   error
}

// NewRegistry returns a registry that starts workers with start and reports
// their exits to onExit (which may be nil).
func NewRegistry(start StartFunc, onExit ExitFunc) *Registry {
	return &Registry{start: start, onExit: onExit, pods: map[Identity]*pod{}}
}

// Get returns the live worker for id, starting one if there is none.
// Concurrent callers for the same identity share one start.
func (r *Registry) Get(ctx context.Context, id Identity) (*sandbox.Worker, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, ErrClosed
		}
		p, ok := r.pods[id]
		if !ok {
			p = &pod{ready: make(chan struct{})}
			r.pods[id] = p
			r.mu.Unlock()
			r.launch(ctx, id, p)
		} else {
			r.mu.Unlock()
		}
		select {
		case <-p.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if p.err != nil {
			return nil, p.err
		}
		if p.w.Dead() {
			// Died or being killed since; try again with a fresh one.
			r.forget(id, p)
			continue
		}
		return p.w, nil
	}
}

func (r *Registry) launch(ctx context.Context, id Identity, p *pod) {
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
		if r.onExit != nil {
			r.onExit(id, w, w.Err())
		}
	}()
}

func (r *Registry) forget(id Identity, p *pod) {
	r.mu.Lock()
	if r.pods[id] == p {
		delete(r.pods, id)
	}
	r.mu.Unlock()
}

// Stop stops the worker of id, if any, letting in-flight batches finish.
func (r *Registry) Stop(ctx context.Context, id Identity) {
	r.mu.Lock()
	p, ok := r.pods[id]
	if ok {
		delete(r.pods, id)
	}
	r.mu.Unlock()
	if ok {
		<-p.ready
		if p.w != nil {
			p.w.Close(ctx)
		}
	}
}

// Live returns the identities that have a worker now.
func (r *Registry) Live() []Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]Identity, 0, len(r.pods))
	for id := range r.pods {
		ids = append(ids, id)
	}
	return ids
}

// Close stops every worker and waits for their exits to be reported.
func (r *Registry) Close(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	pods := r.pods
	r.pods = map[Identity]*pod{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-p.ready
			if p.w != nil {
				p.w.Close(ctx)
			}
		}()
	}
	wg.Wait()
	r.wg.Wait()
}
