package server

import (
	"context"
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
type invocationStats struct {
	mu  sync.Mutex
	fns map[string]*fnStats
}

type fnStats struct {
	fn                                       *functions.Function
	pod                                      string
	batches, rows, rowErrors, fails, refused atomic.Int64
}

func newInvocationStats() *invocationStats {
	return &invocationStats{fns: map[string]*fnStats{}}
}

func (st *invocationStats) get(f *functions.Function, pod string) *fnStats {
	key := f.Env + "/" + f.Name
	st.mu.Lock()
	defer st.mu.Unlock()
	c, ok := st.fns[key]
	if !ok {
		c = &fnStats{fn: f, pod: pod}
		st.fns[key] = c
	}
	return c
}

// take returns and resets the counters gathered so far.
func (st *invocationStats) take() []*fnStats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]*fnStats, 0, len(st.fns))
	for _, c := range st.fns {
		out = append(out, c)
	}
	st.fns = map[string]*fnStats{}
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

func (s *Server) writeSummaries(ctx context.Context) error {
	for _, c := range s.stats.take() {
		if c.batches.Load() == 0 {
			continue
		}
		err := s.audit.Record(ctx, audit.Event{
			Type: audit.TypeInvocation, Actor: "task-managers", Pod: c.pod,
			Resource: "function/" + c.fn.Env + "/" + c.fn.Name, Decision: audit.Allow,
			Details: map[string]string{
				"batches":         strconv.FormatInt(c.batches.Load(), 10),
				"rows":            strconv.FormatInt(c.rows.Load(), 10),
				"row_errors":      strconv.FormatInt(c.rowErrors.Load(), 10),
				"failed_batches":  strconv.FormatInt(c.fails.Load(), 10),
				"refused_batches": strconv.FormatInt(c.refused.Load(), 10),
			},
		})
		if err != nil {
			return err
		}
	}
	return nil
}
