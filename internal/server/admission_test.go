package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

func TestReserve(t *testing.T) {
	type step struct {
		conn string
		n    int64
		ok   bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"anything when idle", []step{{"a", 500, true}, {"b", 1, false}}},
		{"first come up to half", []step{{"a", 30, true}, {"a", 20, true}, {"a", 1, false}}},
		// Past half, b holds nothing and gets in; a, over its share, not.
		{"others get in past half", []step{{"a", 50, true}, {"b", 10, true}, {"a", 1, false}, {"b", 10, true}}},
		{"share is split between connections", []step{{"a", 40, true}, {"b", 10, true}, {"c", 16, true}, {"c", 10, false}}},
		{"never past the whole budget", []step{{"a", 50, true}, {"b", 20, true}, {"c", 15, true}, {"d", 10, true}, {"e", 10, false}}},
		// b is over its share, but c, with nothing in flight, gets in.
		{"a new caller is not locked out", []step{{"a", 50, true}, {"b", 30, true}, {"b", 5, false}, {"c", 15, true}}},
		// c is under its share (50/3) but may not take the last eighth.
		{"the last eighth is kept", []step{{"a", 50, true}, {"b", 39, true}, {"c", 5, true}, {"c", 1, false}, {"d", 1, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAdmission(policies.Edge{MaxInflightBytes: 100})
			var total int64
			for i, s := range tc.steps {
				if got := a.reserve(s.conn, s.n); got != s.ok {
					t.Fatalf("step %d: reserve(%s, %d) = %v with %d in flight %v", i, s.conn, s.n, got, a.inflight(), a.conns)
				}
				if s.ok {
					total += s.n
				}
			}
			if a.inflight() != total {
				t.Fatalf("in flight %d, want %d", a.inflight(), total)
			}
		})
	}
}

// TestEstimate: an unread request on a new connection reserves
// firstEstimate; the estimate then follows the sizes read on that
// connection, never below minEstimate.
func TestEstimate(t *testing.T) {
	a := newAdmission(policies.Edge{MaxInflightBytes: 1 << 30})
	if n, ok := a.reserveUnread("a"); !ok || n != firstEstimate {
		t.Fatalf("first reservation %d %v, want %d", n, ok, firstEstimate)
	}
	last := int64(firstEstimate)
	for range 30 {
		n, _ := a.reserveUnread("a")
		if n > last {
			t.Fatalf("estimate grew from %d to %d on small requests", last, n)
		}
		last = n
		a.add("a", 1000-n, 1000) // read: 1000 bytes
	}
	if last != minEstimate {
		t.Errorf("estimate after small requests %d, want %d", last, minEstimate)
	}
	if n, _ := a.reserveUnread("b"); n != firstEstimate {
		t.Errorf("another connection reserved %d, want %d", n, firstEstimate)
	}
}

// fakeInvoke serves Invoke by holding each call until release is closed,
// and InvokeStream with serveStream and handle.
type fakeInvoke struct {
	udfhostv1.UnimplementedInvokeServiceServer
	admit   *admission
	lim     streamLimits
	handle  func(context.Context, *udfhostv1.InvokeRequest) *udfhostv1.InvokeResponse
	started chan struct{}
	release chan struct{}
	calls   atomic.Int64
}

func (f *fakeInvoke) Invoke(ctx context.Context, req *udfhostv1.InvokeRequest) (*udfhostv1.InvokeResponse, error) {
	f.admit.settle(ctx, proto.Size(req))
	f.calls.Add(1)
	f.started <- struct{}{}
	<-f.release
	return &udfhostv1.InvokeResponse{Seq: req.Seq}, nil
}

func (f *fakeInvoke) InvokeStream(st udfhostv1.InvokeService_InvokeStreamServer) error {
	return serveStream(st, f.lim, f.handle)
}

// payloads counts the request messages the server read.
type payloads struct{ n atomic.Int64 }

func (p *payloads) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (p *payloads) HandleRPC(_ context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.InPayload); ok {
		p.n.Add(1)
	}
}
func (p *payloads) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (p *payloads) HandleConn(context.Context, stats.ConnStats)                       {}

// serve starts a gRPC server with a's options around f and returns its
// address and a client connection to it.
func serve(t *testing.T, a *admission, f *fakeInvoke, p *payloads) (string, *grpc.ClientConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(a.serverOptions(), grpc.StatsHandler(p), grpc.MaxRecvMsgSize(80<<20))...)
	udfhostv1.RegisterInvokeServiceServer(srv, f)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ln.Addr().String(), conn
}

func bigRequest(n int) *udfhostv1.InvokeRequest {
	return &udfhostv1.InvokeRequest{Function: "f", Batch: &udfhostv1.Batch{Rows: 1,
		Columns: []*udfhostv1.Column{{Type: udfhostv1.SqlType_TYPE_BYTES, Values: make([]byte, n)}}}}
}

// TestTapRefusesBeforeReading: past the budget an Invoke is refused with
// RESOURCE_EXHAUSTED and a retry hint, its message unread; the bytes come
// back when calls end.
func TestTapRefusesBeforeReading(t *testing.T) {
	a := newAdmission(policies.Edge{MaxInflightBytes: 1 << 20})
	f := &fakeInvoke{admit: a, started: make(chan struct{}, 4), release: make(chan struct{})}
	p := &payloads{}
	_, conn := serve(t, a, f, p)
	cl := udfhostv1.NewInvokeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	first := make(chan error, 1)
	go func() {
		_, err := cl.Invoke(ctx, bigRequest(600<<10))
		first <- err
	}()
	<-f.started
	// 600 KiB in flight and an estimate near 1 MiB: over the budget.
	_, err := cl.Invoke(ctx, bigRequest(600<<10))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("second call: %v, want RESOURCE_EXHAUSTED", err)
	}
	hinted := false
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.RetryDelay.AsDuration() > 0 {
			hinted = true
		}
	}
	if !hinted {
		t.Errorf("refusal %v carries no retry hint", st.Proto())
	}
	if n, c := p.n.Load(), f.calls.Load(); n != 1 || c != 1 {
		t.Errorf("server read %d requests and ran %d calls, want 1 and 1", n, c)
	}
	close(f.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Invoke(ctx, bigRequest(600<<10)); err != nil {
		t.Fatalf("after the first call ended: %v", err)
	}
	waitFor(t, func() bool { return a.inflight() == 0 }, "bytes in flight back to 0")
}

// TestRequestTimeout: an Invoke that announces a message and stalls is
// ended, and its reservation returned, after Edge.RequestTimeout.
func TestRequestTimeout(t *testing.T) {
	a := newAdmission(policies.Edge{RequestTimeout: 200 * time.Millisecond})
	f := &fakeInvoke{admit: a, started: make(chan struct{}, 1), release: make(chan struct{})}
	addr, _ := serve(t, a, f, &payloads{})
	t0 := time.Now()
	msg := stallingCall(t, addr, udfhostv1.InvokeService_Invoke_FullMethodName)
	if took := time.Since(t0); took > 3*time.Second {
		t.Fatalf("stalled call ended after %s", took)
	}
	if f.calls.Load() != 0 {
		t.Fatal("the handler ran")
	}
	if want := fmt.Sprint(int(codes.Canceled)) + " "; !strings.HasPrefix(msg, want) {
		t.Errorf("stalled call ended with %q, want grpc-status %q", msg, want)
	}
	waitFor(t, func() bool { return a.inflight() == 0 }, "bytes in flight back to 0")
}

// TestMaxStreams: streams past Edge.MaxStreams are refused; a closed one
// frees its place.
func TestMaxStreams(t *testing.T) {
	a := newAdmission(policies.Edge{MaxStreams: 2})
	f := &fakeInvoke{admit: a, lim: streamLimits{first: time.Minute, idle: time.Minute},
		handle: func(_ context.Context, r *udfhostv1.InvokeRequest) *udfhostv1.InvokeResponse {
			return &udfhostv1.InvokeResponse{Seq: r.Seq}
		}}
	_, conn := serve(t, a, f, &payloads{})
	cl := udfhostv1.NewInvokeServiceClient(conn)
	open := func() (udfhostv1.InvokeService_InvokeStreamClient, context.CancelFunc, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := cl.InvokeStream(ctx)
		if err == nil {
			err = st.Send(&udfhostv1.InvokeRequest{Seq: 1})
		}
		if err == nil {
			_, err = st.Recv()
		}
		return st, cancel, err
	}
	_, cancel1, err := open()
	if err != nil {
		t.Fatal(err)
	}
	_, cancel2, err := open()
	defer cancel2()
	if err != nil {
		t.Fatal(err)
	}
	_, cancel3, err := open()
	cancel3()
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third stream: %v, want RESOURCE_EXHAUSTED", err)
	}
	cancel1()
	waitFor(t, func() bool { return a.streams.Load() == 1 }, "one stream open")
	_, cancel4, err := open()
	defer cancel4()
	if err != nil {
		t.Fatalf("after one closed: %v", err)
	}
}

// stallingCall sends method a gRPC message header announcing 16 MiB and 1
// KiB of it over plaintext HTTP/2, then waits (at most 10 s) for the
// server to end the call; it returns the call's grpc-status and message.
func stallingCall(t *testing.T, addr, method string) string {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+method, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	go func() {
		msg := make([]byte, 5+1024)
		binary.BigEndian.PutUint32(msg[1:], 16<<20)
		pw.Write(msg)
	}()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			t.Fatal("the server held the stalled call open")
		}
		return err.Error()
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if ctx.Err() != nil {
		t.Fatal("the server held the stalled call open")
	}
	if st := resp.Header.Get("Grpc-Status"); st != "" { // trailers-only answer
		return st + " " + resp.Header.Get("Grpc-Message")
	}
	return resp.Trailer.Get("Grpc-Status") + " " + resp.Trailer.Get("Grpc-Message")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
