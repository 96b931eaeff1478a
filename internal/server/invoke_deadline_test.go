package server

import (
	"testing"
	"time"

	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// TestBatchDeadline: deadline_ms 0 is the pool's batch deadline, a larger
// one is capped at it, a shorter one is the batch's own.
func TestBatchDeadline(t *testing.T) {
	pool := &policies.Pool{BatchDeadline: 2 * time.Second}
	for _, tc := range []struct {
		ms   uint32
		want deadline
	}{
		{0, deadline{run: 2 * time.Second}},
		{300, deadline{run: 300 * time.Millisecond, own: true}},
		{2000, deadline{run: 2 * time.Second}},
		{60000, deadline{run: 2 * time.Second}},
	} {
		if got := batchDeadline(&udfhostv1.InvokeRequest{DeadlineMs: tc.ms}, pool); got != tc.want {
			t.Errorf("deadline_ms %d: %+v, want %+v", tc.ms, got, tc.want)
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
		c := emptyColumn(tc.t)
		if c.Type != tc.t || len(c.Offsets) != tc.offsets || len(c.Values) != 0 || len(c.Validity) != 0 {
			t.Errorf("%s: %+v, want %d bytes of offsets", tc.t, c, tc.offsets)
		}
		for _, b := range c.Offsets {
			if b != 0 {
				t.Errorf("%s: offsets %v, want 0", tc.t, c.Offsets)
			}
		}
	}
}
