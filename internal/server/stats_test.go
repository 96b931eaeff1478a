package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
)

// readAudit returns the records of the audit log at path.
func readAudit(t *testing.T, path string) []audit.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 2<<20)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// TestSummariesLoseNothing: batches that are in flight while summaries
// are taken (they hold their counters across the take, as invoke does)
// still reach a summary; the totals over all summaries are what was
// counted.
func TestSummariesLoseNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{audit: &callLog{Log: log}, stats: newInvocationStats(), log: slog.New(slog.DiscardHandler)}
	fns := []*functions.Function{{Name: "a", Env: "default"}, {Name: "b", Env: "default"}}
	const workers, batches = 8, 3000
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < batches; j++ {
				c := s.stats.get(fns[j%2], "pod")
				c.batches.Add(1)
				c.rows.Add(10)
				c.rowErrors.Add(1)
				c.fails.Add(1) // counted at the end of the batch, maybe after a take
				c.refused.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	flushed := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				flushed <- n
				return
			default:
			}
			if err := s.writeSummaries(context.Background()); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	wg.Wait()
	close(done)
	t.Logf("%d summary rounds while batches ran", <-flushed)
	if err := s.writeSummaries(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	totals := map[string]int64{}
	for _, r := range readAudit(t, path) {
		if r.Type != audit.TypeInvocation {
			continue
		}
		for k, v := range r.Details {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s=%q", k, v)
			}
			totals[k] += n
		}
	}
	const n = workers * batches
	want := map[string]int64{"batches": n, "rows": 10 * n, "row_errors": n, "failed_batches": n, "refused_batches": n}
	for k, w := range want {
		if totals[k] != w {
			t.Errorf("summaries total %s=%d, counted %d", k, totals[k], w)
		}
	}
}

// TestSummaryOfBatchInFlight: a batch counted before a summary and failed
// after it is counted in the next one.
func TestSummaryOfBatchInFlight(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{audit: &callLog{Log: log}, stats: newInvocationStats(), log: slog.New(slog.DiscardHandler)}
	c := s.stats.get(&functions.Function{Name: "a", Env: "default"}, "pod")
	c.batches.Add(1)
	if err := s.writeSummaries(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.fails.Add(1) // the batch ends after the summary
	if err := s.writeSummaries(context.Background()); err != nil {
		t.Fatal(err)
	}
	log.Close()
	var batches, fails int
	for _, r := range readAudit(t, path) {
		if r.Type == audit.TypeInvocation {
			b, _ := strconv.Atoi(r.Details["batches"])
			f, _ := strconv.Atoi(r.Details["failed_batches"])
			batches, fails = batches+b, fails+f
		}
	}
	if batches != 1 || fails != 1 {
		t.Errorf("summaries count %d batches, %d failed; want 1 and 1", batches, fails)
	}
}

// TestWriteSummariesWritesEvery: one refused summary does not stop the
// others; every failure is reported.
func TestWriteSummariesWritesEvery(t *testing.T) {
	log, err := audit.Open(filepath.Join(t.TempDir(), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{audit: &callLog{Log: log}, stats: newInvocationStats(), log: slog.New(slog.DiscardHandler)}
	for _, name := range []string{"a", "b", "c"} {
		s.stats.get(&functions.Function{Name: name, Env: "default"}, "pod").batches.Add(1)
	}
	log.Close() // every Record now fails
	err = s.writeSummaries(context.Background())
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 3 {
		t.Fatalf("writeSummaries = %v, want the 3 failures joined", err)
	}
	if !errors.Is(err, audit.ErrClosed) {
		t.Errorf("%v does not say the log is closed", err)
	}
}
