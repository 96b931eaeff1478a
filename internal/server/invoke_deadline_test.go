package server

import (
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
	"github.com/udfhost/udfhost/sandbox"
)

// TestBatchDeadline: deadline_ms 0 is the pool's batch deadline, a larger
// one is capped at it, a shorter one is the batch's own: enforced in the
// worker with wasm interruption; with process interruption the caller is
// answered at it but the worker (shared by the pod) is killed only at the
// pool's. Overrunning one's own deadline is not charged to the guest.
func TestBatchDeadline(t *testing.T) {
	const poolDL = 2 * time.Second
	timeout := &sandbox.CallError{Class: sandbox.ErrTimeout, Msg: "batch exceeded its deadline"}
	trap := &sandbox.CallError{Class: sandbox.ErrTrap, Msg: "guest trapped"}
	for _, tc := range []struct {
		ms             uint32
		interrupt      policies.Interrupt
		want           deadline
		chargesTimeout bool
	}{
		{0, policies.InterruptProcess, deadline{run: poolDL, pool: poolDL, inWorker: true}, true},
		{300, policies.InterruptProcess, deadline{run: 300 * time.Millisecond, pool: poolDL, own: true}, true},
		{300, policies.InterruptWasm, deadline{run: 300 * time.Millisecond, pool: poolDL, own: true, inWorker: true}, false},
		{2000, policies.InterruptWasm, deadline{run: poolDL, pool: poolDL, inWorker: true}, true},
		{60000, policies.InterruptProcess, deadline{run: poolDL, pool: poolDL, inWorker: true}, true},
	} {
		pool := &policies.Pool{BatchDeadline: poolDL, Interrupt: tc.interrupt}
		got := batchDeadline(&udfhostv1.InvokeRequest{DeadlineMs: tc.ms}, pool)
		if got != tc.want {
			t.Errorf("deadline_ms %d, %s: %+v, want %+v", tc.ms, tc.interrupt, got, tc.want)
		}
		if c := got.charges(timeout); c != tc.chargesTimeout {
			t.Errorf("deadline_ms %d, %s: a timeout charged: %v, want %v", tc.ms, tc.interrupt, c, tc.chargesTimeout)
		}
		if !got.charges(trap) {
			t.Errorf("deadline_ms %d, %s: a trap not charged", tc.ms, tc.interrupt)
		}
	}
}

// TestEmptyColumnIsValidArrow: a 0-row result carries what Arrow needs,
// one offset for VARCHAR and BYTES, nothing for the fixed-width types.
func TestEmptyColumnIsValidArrow(t *testing.T) {
	for _, tc := range []struct {
		t       udfhostv1.SqlType
		offsets int
	}{
		{udfhostv1.SqlType_TYPE_VARCHAR, 4},
		{udfhostv1.SqlType_TYPE_BYTES, 4},
		{udfhostv1.SqlType_TYPE_BIGINT, 0},
		{udfhostv1.SqlType_TYPE_BOOLEAN, 0},
	} {
		c := abi.EmptyResult(udf.Type(tc.t))
		if udfhostv1.SqlType(c.Type) != tc.t || len(c.Offsets) != tc.offsets || len(c.Values) != 0 || len(c.Validity) != 0 {
			t.Errorf("%s: %+v, want %d bytes of offsets", tc.t, c, tc.offsets)
		}
		for _, b := range c.Offsets {
			if b != 0 {
				t.Errorf("%s: offsets %v, want 0", tc.t, c.Offsets)
			}
		}
	}
}
