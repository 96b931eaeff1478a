package server

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/artifacts"
)

// TestCommitBusyStatus: a CommitUpload refused because every compile slot
// stayed taken is RESOURCE_EXHAUSTED with a google.rpc.RetryInfo saying
// when to come back.
func TestCommitBusyStatus(t *testing.T) {
	busy := fmt.Errorf("commit upload up-0123456789abcdef: %w", &artifacts.BusyError{Running: 2, Waited: 2 * time.Second, RetryAfter: 2 * time.Second})
	st, _ := status.FromError(toStatus(commitError(busy)))
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("code %s (%s), want ResourceExhausted", st.Code(), st.Message())
	}
	var hint time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hint = ri.RetryDelay.AsDuration()
		}
	}
	if hint != 2*time.Second {
		t.Fatalf("retry hint %s, want 2s; status %v", hint, st.Proto())
	}
}
