package sandbox

import (
	"context"
	"fmt"
	"sync"
)

// Spares keeps worker processes started ahead of need, so a new pod waits
// only for its module to load, not for exec and a Go runtime to start. A
// spare has no identity; it is given exactly one and never returned.
type Spares struct {
	cfg    Config // Exe, Args and Stderr are used
	ch     chan *Worker
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewSpares starts n spare workers in the background (n may be 0).
func NewSpares(cfg Config, n int) *Spares {
	s := &Spares{cfg: cfg, ch: make(chan *Worker, n)}
	for i := 0; i < n; i++ {
		s.refill()
	}
	return s
}

func (s *Spares) refill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || cap(s.ch) == 0 {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		w, err := spawn(s.cfg)
		if err != nil {
			return // Start spawns on demand when no spare is there
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case s.ch <- w:
			if !s.closed {
				return
			}
			<-s.ch
		default:
		}
		w.kill()
		w.reap()
	}()
}

// Start is like the package's Start but uses a spare process when one is
// ready, and starts a replacement in the background.
func (s *Spares) Start(ctx context.Context, cfg Config) (*Worker, error) {
	var w *Worker
	select {
	case w = <-s.ch:
		s.refill()
	default:
	}
	if w == nil {
		return Start(ctx, cfg)
	}
	if err := w.assign(ctx, cfg); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", cfg.Identity, err)
	}
	return w, nil
}

// Close stops the spare processes.
func (s *Spares) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	for {
		select {
		case w := <-s.ch:
			w.kill()
			w.reap()
		default:
			return
		}
	}
}
