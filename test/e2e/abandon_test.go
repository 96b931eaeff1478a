package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/jsonrows"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// TestAbandonedBatchIsStoppedAndChargedToItself: a runaway batch whose
// client gives up long before the pool's deadline (2 s, process
// interruption: the worker is killed) is still stopped at that deadline —
// its worker is stopped and audited — and its violation is recorded for
// it; the next, innocent batch of the same artifact is answered and
// nothing is charged to it. A batch's own shorter deadline_ms answers the
// caller with DEADLINE_EXCEEDED at it.
func TestAbandonedBatchIsStoppedAndChargedToItself(t *testing.T) {
	s := startServer(t)
	s.createFunction("spin", s.upload("loop"), "spin", "(BIGINT) -> BIGINT")
	count := func() (violations, stopped int) {
		for _, r := range s.auditRecords() {
			switch {
			case r.Type == "sandbox.violation" && r.Details["function"] == "spin":
				if r.Details["class"] != "timeout" {
					t.Errorf("violation of class %q: %+v", r.Details["class"], r)
				}
				violations++
			case r.Type == "worker.stopped":
				stopped++
			}
		}
		return
	}
	// Warm the pod, so the abandoned batch surely reaches its guest.
	if _, err := s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "spin", Batch: bigints([]int64{1})}); err != nil {
		t.Fatal(err)
	}
	client, cancel := context.WithTimeout(s.ctx(), 200*time.Millisecond)
	defer cancel()
	_, err := s.invoker().Invoke(client, &udfhostv1.InvokeRequest{Function: "spin", Batch: bigints([]int64{-1})})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("abandoned call: %v, want the client's DEADLINE_EXCEEDED", err)
	}
	var violations, stopped int
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if violations, stopped = count(); violations > 0 && stopped > 0 {
			break
		}
	}
	if violations != 1 || stopped != 1 {
		t.Fatalf("after the abandoned batch: %d violations, %d workers stopped; want its own violation and its worker stopped\n%s", violations, stopped, s.logs())
	}
	resp, err := s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "spin", Batch: bigints([]int64{5})})
	if err != nil || jsonrows.Values(resp)[0] != int64(5) {
		t.Fatalf("next, innocent batch: %v, %v", resp, err)
	}

	// Its own deadline: the caller is answered then; the pod's shared
	// worker is not killed for a deadline a caller chose, but the runaway
	// batch is still stopped at the pool's, and charged for that.
	_, err = s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "spin", Batch: bigints([]int64{-1}), DeadlineMs: 300})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "own deadline of 300ms") {
		t.Fatalf("batch past its own deadline_ms: %v, want DEADLINE_EXCEEDED naming it", err)
	}
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if violations, stopped = count(); violations >= 2 && stopped >= 2 {
			break // the kill is audited once the worker is reaped
		}
	}
	if violations != 2 || stopped != 2 {
		t.Errorf("after the deadline_ms batch: %d violations, %d workers stopped; want 2 and 2 (stopped at the pool's deadline)", violations, stopped)
	}
	resp, err = s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "spin", Batch: bigints([]int64{6}), DeadlineMs: 5000})
	if err != nil || jsonrows.Values(resp)[0] != int64(6) {
		t.Fatalf("batch after it: %v, %v", resp, err)
	}
}

// TestRetriedBatchIsAudited: batches in flight on a worker killed for
// another batch's deadline are run again on a new worker, and every such
// re-run is in the audit log.
func TestRetriedBatchIsAudited(t *testing.T) {
	s := startServer(t)
	s.createFunction("spin", s.upload("loop"), "spin", "(BIGINT) -> BIGINT")
	invoke := func(v int64) (*udfhostv1.InvokeResponse, error) {
		return s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "spin", Batch: bigints([]int64{v})})
	}
	if _, err := invoke(1); err != nil {
		t.Fatal(err)
	}
	// Two runaway batches hold the pool's two instances; a good one
	// waits behind them in the worker when the first overruns.
	// The second starts a second later, so it is still within its own
	// deadline when the first one's kills the worker.
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := invoke(-1); errs <- err }()
		time.Sleep(time.Second)
	}
	resp, err := invoke(7)
	if err != nil || jsonrows.Values(resp)[0] != int64(7) {
		t.Fatalf("good batch queued behind the runaway ones: %v, %v", resp, err)
	}
	for range 2 {
		if err := <-errs; status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("runaway batch: %v, want DEADLINE_EXCEEDED", err)
		}
	}
	retried := 0
	for _, r := range s.auditRecords() {
		if r.Type == "invocation.retried" && r.Details["function"] == "spin" && r.Details["class"] == "worker_died" && r.Pod != "" {
			retried++
		}
	}
	if retried != 2 {
		t.Errorf("%d invocation.retried records, want 2 (the good batch and the second runaway one)", retried)
	}
}
