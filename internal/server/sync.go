package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/udfhost/udfhost/functions"
)

// defaultSyncInterval is how often a host on a shared store picks up what
// the other hosts changed (artifacts, quarantines, functions). A change
// made through one host is served, or refused, by every other within one
// interval plus one round: 500 ms keeps that well inside the 2 s hosts
// promise, at six small LIST requests a second per host (meta/,
// quarantine/ and functions/ each round).
const defaultSyncInterval = 500 * time.Millisecond

// syncTimeout bounds one round: a store that hangs fails the round (and
// is logged) instead of stopping the loop.
const syncTimeout = 10 * time.Second

// syncFailureLogEvery rate-limits the log of a store that keeps failing:
// the first failure is logged, then at most one line per interval, and
// the recovery.
const syncFailureLogEvery = 30 * time.Second

// runSync refreshes the shared store every interval until s.stop is
// closed (Shutdown). It never stops the server: a round that fails is
// logged and the next one tries again, while what is known keeps being
// served (running pods serve from their local copy).
func (s *Server) runSync(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	var fl syncFailures
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		err := s.syncOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		fl.report(s, err, time.Now())
	}
}

// syncOnce is one round: artifacts and quarantines first, so that a
// function that appears finds its artifact; then functions, stopping the
// pods of those that went away.
func (s *Server) syncOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	aerr := s.store.Sync(ctx)
	ch, ferr := s.fns.Sync(ctx)
	for _, f := range ch.Removed {
		s.functionGone(ctx, f)
	}
	for _, f := range ch.Added {
		s.log.Debug("function from the store", "function", f.Env+"/"+f.Name, "digest", f.Digest)
	}
	return errors.Join(aerr, ferr)
}

// functionGone reacts to a function another host deleted (or replaced):
// calls to it are refused already (it is out of the registry); its pod
// stops once no function of this host uses it, as after a local delete.
func (s *Server) functionGone(ctx context.Context, f *functions.Function) {
	defer s.digestLocks.lock(f.Digest)()
	s.log.Info("function removed by another host", "function", f.Env+"/"+f.Name, "digest", f.Digest)
	s.stopIfUnused(ctx, s.identity(f))
}

// syncFailures rate-limits the log of failed rounds.
type syncFailures struct {
	mu       sync.Mutex
	failing  bool
	lastLog  time.Time
	suppress int
}

func (fl *syncFailures) report(s *Server, err error, now time.Time) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if err == nil {
		if fl.failing {
			s.log.Info("store reachable again: hosts converge", "store", s.spec.String())
		}
		fl.failing, fl.suppress = false, 0
		return
	}
	if fl.failing && now.Sub(fl.lastLog) < syncFailureLogEvery {
		fl.suppress++
		return
	}
	s.log.Warn("store sync failed: serving what is known, retrying", "store", s.spec.String(), "err", err, "suppressed", fl.suppress)
	fl.failing, fl.lastLog, fl.suppress = true, now, 0
}
