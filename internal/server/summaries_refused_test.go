package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
)

// TestSummaryRefusedIsKept: a summary the log refuses is given back and
// written, with what was counted since, by the next summary that the log
// takes; while the log's last write failed, invocations are refused
// until their summary is written (invocationsAudited).
func TestSummaryRefusedIsKept(t *testing.T) {
	dir := t.TempDir()
	closed, err := openAudit(filepath.Join(dir, "closed.log"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	s := &Server{audit: closed, stats: newInvocationStats(), log: slog.New(slog.DiscardHandler)}
	fn := &functions.Function{Name: "a", Env: "default"}
	c := s.stats.get(fn, "pod")
	c.batches.Add(2)
	c.rows.Add(20)
	if err := s.writeSummaries(context.Background()); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("summary to a closed log: %v", err)
	}
	c.batches.Add(1)
	c.rows.Add(10)

	path := filepath.Join(dir, "audit.log")
	if s.audit, err = openAudit(path, audit.Options{}); err != nil {
		t.Fatal(err)
	}
	// A failed write is remembered: the next invocation writes the
	// summaries first, and goes ahead once they are written.
	failed := fmt.Errorf("append audit record: %w: write: no space left on device", audit.ErrBroken)
	s.audit.failing.Store(&failed)
	if err := s.invocationsAudited(context.Background()); err != nil {
		t.Fatalf("invocation once the log takes records again: %v", err)
	}
	if s.audit.failing.Load() != nil {
		t.Error("a successful write did not clear the failure")
	}
	if err := s.invocationsAudited(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.audit.Close()
	var sums []map[string]string
	for _, r := range readAudit(t, path) {
		if r.Type == audit.TypeInvocation {
			sums = append(sums, r.Details)
		}
	}
	if len(sums) != 1 || sums[0]["batches"] != "3" || sums[0]["rows"] != "30" {
		t.Errorf("summaries %v, want one of 3 batches and 30 rows", sums)
	}

	// A log that cannot be written: the batch is refused, counted for
	// the next summary.
	s.audit = closed
	s.audit.failing.Store(&failed)
	c.batches.Add(1)
	if err := s.invocationsAudited(context.Background()); err == nil {
		t.Fatal("invocation while the log cannot be written: not refused")
	}
	if got := c.batches.Load(); got != 1 {
		t.Errorf("after a refused summary the counter holds %d batches, want 1", got)
	}
}
