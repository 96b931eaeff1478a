package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// streamServer serves InvokeStream with serveStream, lim and handle; each
// handled request waits its Seq in milliseconds.
func streamServer(t *testing.T, lim streamLimits) (string, udfhostv1.InvokeServiceClient) {
	t.Helper()
	a := newAdmission(policies.Edge{})
	f := &fakeInvoke{admit: a, lim: lim, handle: func(ctx context.Context, r *udfhostv1.InvokeRequest) *udfhostv1.InvokeResponse {
		select {
		case <-time.After(time.Duration(r.Seq) * time.Millisecond):
		case <-ctx.Done():
		}
		return &udfhostv1.InvokeResponse{Seq: r.Seq}
	}}
	addr, conn := serve(t, a, f, &payloads{})
	return addr, udfhostv1.NewInvokeServiceClient(conn)
}

// TestStreamLimits: a stream is ended with UNAVAILABLE when it keeps the
// server waiting for a request with nothing in flight, never while a
// batch runs or while requests keep coming.
func TestStreamLimits(t *testing.T) {
	lim := streamLimits{first: 300 * time.Millisecond, idle: 300 * time.Millisecond}
	tests := []struct {
		name string
		send []uint64 // requests (Seq = handling time in ms), each after the previous answer
		gap  time.Duration
		want string // in the final status; "" for none
	}{
		{"silent from the start", nil, 0, "first_request"},
		{"a batch longer than the limit", []uint64{900}, 0, "next_request"},
		{"steady requests", []uint64{1, 1, 1, 1, 1, 1, 1, 1}, 150 * time.Millisecond, "next_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, cl := streamServer(t, lim)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := cl.InvokeStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i, seq := range tc.send {
				time.Sleep(tc.gap)
				if err := st.Send(&udfhostv1.InvokeRequest{Seq: seq}); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				if r, err := st.Recv(); err != nil || r.Seq != seq {
					t.Fatalf("answer %d: %v %v", i, r, err)
				}
			}
			t0 := time.Now()
			_, err = st.Recv()
			took := time.Since(t0)
			s := status.Convert(err)
			if s.Code() != codes.Unavailable || !strings.HasPrefix(s.Message(), "idle stream cut: ") || !strings.Contains(s.Message(), "(limit 300ms)") {
				t.Fatalf("stream ended with %v, want UNAVAILABLE starting %q", err, "idle stream cut: ")
			}
			if !hasIdleCutInfo(s, tc.want) {
				t.Errorf("status %v carries no ErrorInfo %s waiting for %s", s.Proto(), idleCutReason, tc.want)
			}
			if took < lim.idle*3/4 || took > lim.idle+time.Second {
				t.Fatalf("stream ended %s after the last answer, limit %s", took, lim.idle)
			}
		})
	}
}

func hasIdleCutInfo(s *status.Status, waiting string) bool {
	for _, d := range s.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Reason == idleCutReason && ei.Metadata["waiting_for"] == waiting {
			return true
		}
	}
	return false
}

// TestIdleCutMessage: the message says it is an idle cut, how long the
// stream waited against which limit, what was lost, and what to do.
func TestIdleCutMessage(t *testing.T) {
	tests := []struct {
		first bool
		want  string
	}{
		{true, "idle stream cut: no first request for 5.001s after the stream opened (limit 5s); nothing was lost; open a new stream and send its first batch when it opens"},
		{false, "idle stream cut: no request for 1m0s (limit 1m0s) with no batch in flight; every earlier batch was answered; open a new stream"},
	}
	for _, tc := range tests {
		limit := time.Minute
		idle := time.Minute + 100*time.Microsecond
		if tc.first {
			limit, idle = 5*time.Second, 5*time.Second+1200*time.Microsecond
		}
		s := status.Convert(idleCut(tc.first, idle, limit))
		if s.Code() != codes.Unavailable || s.Message() != tc.want {
			t.Errorf("got %s %q\nwant UNAVAILABLE %q", s.Code(), s.Message(), tc.want)
		}
	}
}

// TestStreamStalledMessage: a stream that announces a message and stalls
// half-way is ended.
func TestStreamStalledMessage(t *testing.T) {
	addr, _ := streamServer(t, streamLimits{first: 200 * time.Millisecond, idle: time.Minute})
	msg := stallingCall(t, addr, udfhostv1.InvokeService_InvokeStream_FullMethodName)
	if want := fmt.Sprint(int(codes.Unavailable)) + " "; !strings.HasPrefix(msg, want) {
		t.Errorf("stalled stream ended with %q, want grpc-status %q", msg, want)
	}
}

// TestStreamOrder: pipelined requests run concurrently and are answered in
// request order.
func TestStreamOrder(t *testing.T) {
	_, cl := streamServer(t, streamLimits{first: time.Minute, idle: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cl.InvokeStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seqs := []uint64{300, 200, 100, 1, 250, 2}
	t0 := time.Now()
	for _, s := range seqs {
		if err := st.Send(&udfhostv1.InvokeRequest{Seq: s}); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseSend()
	for i, want := range seqs {
		r, err := st.Recv()
		if err != nil || r.Seq != want {
			t.Fatalf("answer %d: %v %v, want seq %d", i, r, err, want)
		}
	}
	if took := time.Since(t0); took > 700*time.Millisecond {
		t.Errorf("took %s: batches did not run concurrently", took)
	}
	if _, err := st.Recv(); err == nil {
		t.Fatal("stream not closed after the last answer")
	}
}
