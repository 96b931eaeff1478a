package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
)

// invocationStats aggregates invocations per function between audit
// summaries: a task manager calls for every batch, and one audit record (an
// fsync) per batch would cost more than the batch.
//
// Counters are never replaced: a batch still running when a summary is
// taken holds the same counters, and what it adds afterwards goes into the
// next summary. Each summary takes every counter with Swap(0), so across
// summaries every count appears exactly once.
type invocationStats struct {
	mu  sync.Mutex
	fns map[statsKey]*fnStats
}

// statsKey is one function as it was bound: a function deleted and created
// again under its name on another artifact runs in another pod.
type statsKey struct{ env, name, pod string }

type fnStats struct {
	fn                                       *functions.Function
	pod                                      string
	batches, rows, rowErrors, fails, refused atomic.Int64
}

// summary is what one fnStats counted since the last one was taken.
type summary struct {
	fn                                       *functions.Function
	pod                                      string
	batches, rows, rowErrors, fails, refused int64
}

func newInvocationStats() *invocationStats {
	return &invocationStats{fns: map[statsKey]*fnStats{}}
}

func (st *invocationStats) get(f *functions.Function, pod string) *fnStats {
	key := statsKey{f.Env, f.Name, pod}
	st.mu.Lock()
	defer st.mu.Unlock()
	c, ok := st.fns[key]
	if !ok {
		c = &fnStats{fn: f, pod: pod}
		st.fns[key] = c
	}
	return c
}

// take returns what was counted since the last take, for every function
// that counted anything, and resets it without losing a count made
// concurrently.
func (st *invocationStats) take() []summary {
	st.mu.Lock()
	all := make([]*fnStats, 0, len(st.fns))
	for _, c := range st.fns {
		all = append(all, c)
	}
	st.mu.Unlock()
	var out []summary
	for _, c := range all {
		s := summary{fn: c.fn, pod: c.pod,
			batches: c.batches.Swap(0), rows: c.rows.Swap(0), rowErrors: c.rowErrors.Swap(0),
			fails: c.fails.Swap(0), refused: c.refused.Swap(0)}
		if s.batches|s.rows|s.rowErrors|s.fails|s.refused != 0 {
			out = append(out, s)
		}
	}
	return out
}

func (s *Server) flushSummaries() {
	t := time.NewTicker(s.cfg.SummaryInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.writeSummaries(context.Background()); err != nil {
				s.log.Error("write invocation summaries", "err", err)
			}
		}
	}
}

// giveBack adds a summary the log refused back to its counters: it is
// written with the next one, so no count is lost while the server runs.
func (st *invocationStats) giveBack(s summary) {
	c := st.get(s.fn, s.pod)
	c.batches.Add(s.batches)
	c.rows.Add(s.rows)
	c.rowErrors.Add(s.rowErrors)
	c.fails.Add(s.fails)
	c.refused.Add(s.refused)
}

// writeSummaries records one summary per function that counted anything.
// A summary the log refuses does not stop the others; the errors are
// joined, and what was refused is given back to be written next time.
func (s *Server) writeSummaries(ctx context.Context) error {
	var errs []error
	for _, c := range s.stats.take() {
		err := s.audit.Record(ctx, audit.Event{
			Type: audit.TypeInvocation, Actor: "task-managers", Pod: c.pod,
			Resource: "function/" + c.fn.Env + "/" + c.fn.Name, Decision: audit.Allow,
			Details: map[string]string{
				"batches":         strconv.FormatInt(c.batches, 10),
				"rows":            strconv.FormatInt(c.rows, 10),
				"row_errors":      strconv.FormatInt(c.rowErrors, 10),
				"failed_batches":  strconv.FormatInt(c.fails, 10),
				"refused_batches": strconv.FormatInt(c.refused, 10),
			},
		})
		if err != nil {
			s.stats.giveBack(c)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// invocationsAudited is nil unless the audit log's last write failed.
// Then the invocation summaries are written now, the batch being invoked
// counted in them; while they cannot be, the batch is refused: an
// invocation is audited by its summary, and none runs that its summary
// may never record. One invocation at a time tries; the others are
// refused with the last failure meanwhile.
func (s *Server) invocationsAudited(ctx context.Context) error {
	failing := s.audit.failing.Load()
	if failing == nil {
		return nil
	}
	err := *failing
	if s.audit.probe.TryLock() {
		err = s.writeSummaries(context.WithoutCancel(ctx))
		s.audit.probe.Unlock()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("refuse the batch: its invocation summary cannot be audited: %w", err)
}
