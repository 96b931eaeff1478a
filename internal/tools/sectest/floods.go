package sectest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// Floods of unauthenticated callers.

// codeCounter tallies the outcomes of many calls.
type codeCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *codeCounter) add(err error) {
	k := "OK"
	if err != nil {
		st := status.Convert(err)
		k = st.Code().String()
		if st.Code() != codes.Unauthenticated {
			k += ": " + st.Message()
		}
	}
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[k]++
	c.mu.Unlock()
}

// others lists the outcomes other than want, most frequent first.
func (c *codeCounter) others(want string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k, n := range c.n {
		if k != want {
			out = append(out, fmt.Sprintf("%d calls: %.200s", n, k))
		}
	}
	sort.Strings(out)
	return out
}

// authFailures are the auth.failed records of the gRPC API (not of upload
// URLs) since seq, and the failures they account for (see denials).
func (cr *caseRun) authFailures(seq uint64) ([]Record, int, error) {
	return cr.denials(seq, func(r Record) bool {
		return r.Resource != "upload-url" && !strings.HasPrefix(r.Resource, "upload/")
	})
}

// denials are the auth.failed records since seq that keep accepts, and
// the failures they account for: a record's details["count"], or 1
// without one.
func (cr *caseRun) denials(seq uint64, keep func(Record) bool) ([]Record, int, error) {
	recs, err := cr.r.audit.since(seq)
	if err != nil {
		return nil, 0, err
	}
	var out []Record
	sum := 0
	for _, r := range recs {
		if r.Type != "auth.failed" || !keep(r) {
			continue
		}
		out = append(out, r)
		n, err := strconv.Atoi(r.Details["count"])
		if err != nil || n < 1 {
			n = 1
		}
		sum += n
	}
	return out, sum, nil
}

// checkAggregated waits up to params.wait_s for the auth.failed records
// keep accepts to account for total refusals (what they were, for
// messages), and adds to o a failure unless their counts sum to total
// (within params.slack, for earlier cases' refusals flushed in the same
// interval), in at most params.max_records records, with the audit log
// grown by at most params.max_audit_kb KiB since it was size0 bytes.
func (cr *caseRun) checkAggregated(ctx context.Context, o *outcome, keep func(Record) bool, total int, what string, size0 int64, defSlack int) {
	wait := seconds(cr.c.Params["wait_s"], 15)
	var recs []Record
	var sum int
	for deadline := time.Now().Add(wait); ; {
		var err error
		if recs, sum, err = cr.denials(cr.seq, keep); err != nil {
			o.fails = append(o.fails, err.Error())
			return
		}
		if sum >= total || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	slack := param(cr.c, "slack", defSlack)
	o.notes = append(o.notes, fmt.Sprintf("%d auth.failed records account for %d %s", len(recs), sum, what))
	switch {
	case sum < total:
		o.fails = append(o.fails, fmt.Sprintf("after %s the audit log accounts for %d of %d %s (auth.failed details count): denials were lost", wait, sum, total, what))
	case sum > total+slack:
		o.fails = append(o.fails, fmt.Sprintf("the audit log accounts for %d %s, %d were made: denials are counted twice", sum, what, total))
	}
	if maxRecs := param(cr.c, "max_records", 20); len(recs) > maxRecs {
		o.fails = append(o.fails, fmt.Sprintf("%d auth.failed records for %d %s of one client (at most %d): repeated failures are not aggregated", len(recs), total, what, maxRecs))
	}
	if size1, err := fileSize(cr.r.audit.path); err == nil {
		grew, limit := (size1-size0)>>10, int64(param(cr.c, "max_audit_kb", 64))
		o.notes = append(o.notes, fmt.Sprintf("the audit log grew by %d KiB", grew))
		if grew > limit {
			o.fails = append(o.fails, fmt.Sprintf("the audit log grew by %d KiB for %d %s (limit %d KiB): an anonymous flood fills the disk", grew, total, what, limit))
		}
	}
}

// anonFlood makes params.calls calls with no token and as many with a
// forged one, params.concurrency at a time per kind, each kind on one
// connection of the same client. Every call must be refused with
// UNAUTHENTICATED; within params.wait_s the auth.failed records must
// account for every failure (their counts sum to the number of calls, with
// params.slack for failures of earlier cases flushed in the same
// interval), in at most params.max_records records, and the audit log
// must grow by at most params.max_audit_kb KiB.
func anonFlood(ctx context.Context, cr *caseRun) outcome {
	per, conc := param(cr.c, "calls", 2000), param(cr.c, "concurrency", 16)
	size0, err := fileSize(cr.r.audit.path)
	if err != nil {
		return setupFailed(err)
	}
	forged := strings.Repeat("0123456789abcdef", 4)
	var la localAddrs
	var cc codeCounter
	var o outcome
	t0 := time.Now()
	for _, tok := range []string{"", forged} {
		conn, err := dial(cr.r.cfg.Addr, tok, &la)
		if err != nil {
			return setupFailed(err)
		}
		cl := udfhostv1.NewArtifactServiceClient(conn)
		if tok == "" {
			// The first failure from a source is recorded at once.
			_, err := cl.ListArtifacts(ctx, &udfhostv1.ListArtifactsRequest{})
			cc.add(err)
			first := time.Now()
			for time.Since(first) < 2*time.Second {
				if recs, _, _ := cr.authFailures(cr.seq); len(recs) > 0 {
					o.notes = append(o.notes, fmt.Sprintf("the first failure was recorded after %s", time.Since(first).Round(time.Millisecond)))
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		jobs := make(chan struct{})
		var wg sync.WaitGroup
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					_, err := cl.ListArtifacts(cctx, &udfhostv1.ListArtifactsRequest{})
					cancel()
					cc.add(err)
				}
			}()
		}
		n := per
		if tok == "" {
			n-- // the first one above
		}
		for range n {
			jobs <- struct{}{}
		}
		close(jobs)
		wg.Wait()
		conn.Close()
	}
	o.took = time.Since(t0)
	total := 2 * per
	o.notes = append(o.notes, fmt.Sprintf("%d refused calls in %s from %s", total, o.took.Round(time.Millisecond), strings.Join(la.list(), ", ")))
	if other := cc.others(codes.Unauthenticated.String()); len(other) > 0 {
		o.fails = append(o.fails, "not refused as Unauthenticated: "+strings.Join(other, "; "))
	} else {
		o.stage, o.code, o.msg = "auth", codes.Unauthenticated.String(), fmt.Sprintf("all %d calls refused", total)
	}

	// Every denial accounted for, in a bounded number of records.
	cr.checkAggregated(ctx, &o, func(r Record) bool {
		return r.Resource != "upload-url" && !strings.HasPrefix(r.Resource, "upload/")
	}, total, "refused calls", size0, 100)
	return o
}

// unauthBigMessage sends params.calls concurrent unauthenticated Invoke
// calls, each carrying a params.batch_mb MiB batch. Every call must be
// refused with UNAUTHENTICATED without the server holding the messages:
// its memory may grow by at most params.max_rss_mb MiB. The refusals must
// be audited (auth.failed); the case waits up to params.wait_s for the
// record, which an aggregating server may write at its next flush.
func unauthBigMessage(ctx context.Context, cr *caseRun) outcome {
	calls, mb := param(cr.c, "calls", 6), param(cr.c, "batch_mb", 60)
	conn, err := dial(cr.r.cfg.Addr, "", nil)
	if err != nil {
		return setupFailed(err)
	}
	defer conn.Close()
	cl := udfhostv1.NewInvokeServiceClient(conn)
	vals := make([]byte, mb<<20)
	b := &udfhostv1.Batch{Rows: uint32(len(vals) / 8), Columns: []*udfhostv1.Column{{Type: udfhostv1.SqlType_TYPE_BIGINT, Values: vals}}}
	w, why := cr.watchRSS()
	var cc codeCounter
	var wg sync.WaitGroup
	gate := make(chan struct{})
	t0 := time.Now()
	for range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			_, err := cl.Invoke(cctx, &udfhostv1.InvokeRequest{Function: cr.name(""), Batch: b})
			cc.add(err)
		}()
	}
	close(gate)
	wg.Wait()
	o := outcome{took: time.Since(t0)}
	o.notes = append(o.notes, fmt.Sprintf("%d unauthenticated %d MiB calls ended in %s", calls, mb, o.took.Round(time.Millisecond)))
	if w != nil {
		time.Sleep(200 * time.Millisecond) // what the server still holds
		w.stop(&o, int64(param(cr.c, "max_rss_mb", 128)))
	} else {
		o.notes = append(o.notes, why)
	}
	if other := cc.others(codes.Unauthenticated.String()); len(other) > 0 {
		o.fails = append(o.fails, "not refused as Unauthenticated: "+strings.Join(other, "; "))
	} else {
		o.stage, o.code, o.msg = "auth", codes.Unauthenticated.String(), fmt.Sprintf("all %d calls refused", calls)
	}
	for deadline := time.Now().Add(seconds(cr.c.Params["wait_s"], 15)); time.Now().Before(deadline) && ctx.Err() == nil; {
		if recs, _, err := cr.authFailures(cr.seq); err != nil || len(recs) > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return o
}
