package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

const testToken = "0123456789abcdef0123456789abcdef"

// edgeServer is a Server with its real gRPC edge (tap, admission,
// interceptors, health, audit log) around a fakeInvoke instead of the
// sandbox, serving on loopback port 0; it is shut down at the end of the
// test.
func edgeServer(t *testing.T, authInterval time.Duration) (*Server, *fakeInvoke) {
	t.Helper()
	dir := t.TempDir()
	s := New(Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), AuthFailureInterval: authInterval})
	s.token = testToken
	var err error
	if s.audit, err = openAudit(filepath.Join(dir, "audit", "audit.log"), audit.Options{}); err != nil {
		t.Fatal(err)
	}
	s.authFails = newAuthFailures(s.audit.Log, s.log, maxFailSources, failBurst)
	if s.grpcLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if s.httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	admit := newAdmission(policies.Edge{})
	f := &fakeInvoke{admit: admit, lim: streamLimits{first: time.Minute, idle: time.Minute},
		handle: func(_ context.Context, r *udfhostv1.InvokeRequest) *udfhostv1.InvokeResponse {
			return &udfhostv1.InvokeResponse{Seq: r.Seq}
		},
		started: make(chan struct{}, 64), release: make(chan struct{})}
	s.grpc = grpc.NewServer(s.grpcOptions(admit)...)
	udfhostv1.RegisterInvokeServiceServer(s.grpc, f)
	s.registerHealth()
	s.http = &http.Server{Handler: http.NotFoundHandler()}
	s.serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, f
}

// dialFrom connects to s from the loopback address local ("" for any).
func dialFrom(t *testing.T, s *Server, local string) *grpc.ClientConn {
	t.Helper()
	d := &net.Dialer{}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(80<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// records reads the audit log of s (after Shutdown or while running).
func records(t *testing.T, s *Server) []audit.Record {
	t.Helper()
	return readAudit(t, s.audit.Path())
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header, tok, reason string
	}{
		{"Bearer abc", "abc", ""},
		{"bearer abc", "abc", ""},
		{"BEARER abc", "abc", ""},
		{"BeArEr abc", "abc", ""},
		{"  Bearer   abc  ", "abc", ""},
		{"Bearer\tabc", "abc", ""},
		{"Bearer abc\n", "abc", ""},
		{"Bearer abc\r\n", "abc", ""},
		{"abc", "", reasonNoScheme},
		{"", "", reasonMissing},
		{"   ", "", reasonMissing},
		{"Bearer", "", reasonMissing},
		{"Bearer   ", "", reasonMissing},
		{"Basic abc", "", reasonWrongScheme},
		{"Bearerabc", "", reasonNoScheme},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.header), func(t *testing.T) {
			tok, fail := bearerToken(tc.header)
			switch {
			case tc.reason == "" && (fail != nil || tok != tc.tok):
				t.Fatalf("got %q %+v, want token %q", tok, fail, tc.tok)
			case tc.reason != "" && (fail == nil || fail.reason != tc.reason):
				t.Fatalf("got %q %+v, want refusal %q", tok, fail, tc.reason)
			case fail != nil && !strings.Contains(fail.hint, expectedAuth):
				t.Fatalf("refusal %+v does not show %q", fail, expectedAuth)
			}
		})
	}
}

// TestAuthHeader: through the real edge, the scheme is case-insensitive and
// whitespace is tolerated; a token without a scheme, another scheme, a
// wrong token or none are refused UNAUTHENTICATED with a message that
// shows the expected header.
func TestAuthHeader(t *testing.T) {
	s, f := edgeServer(t, time.Hour)
	close(f.release)
	cl := udfhostv1.NewInvokeServiceClient(dialFrom(t, s, ""))
	tests := []struct {
		name    string
		headers []string // authorization values sent
		want    string   // in the refusal; "" for accepted
	}{
		{"canonical", []string{"Bearer " + testToken}, ""},
		{"lower-case scheme", []string{"bearer " + testToken}, ""},
		{"upper-case scheme", []string{"BEARER " + testToken}, ""},
		{"extra spaces", []string{"Bearer    " + testToken + "   "}, ""},
		{"no scheme", []string{testToken}, "authorization header has no scheme; send authorization: Bearer <token>"},
		{"basic", []string{"Basic " + testToken}, "authorization scheme is not Bearer; send authorization: Bearer <token>"},
		{"wrong token", []string{"Bearer " + strings.Repeat("x", 32)}, "invalid bearer token"},
		{"none", nil, "missing bearer token; send authorization: Bearer <token>"},
		{"empty token", []string{"Bearer "}, "missing bearer token"},
		{"two headers", []string{"Bearer " + testToken, "Bearer " + testToken}, "more than one authorization header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, h := range tc.headers {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", h)
			}
			_, err := cl.Invoke(ctx, &udfhostv1.InvokeRequest{Seq: 1})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if st := status.Convert(err); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), tc.want) {
				t.Fatalf("got %v, want UNAUTHENTICATED containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("refusal reveals the token: %v", err)
			}
		})
	}
}

// TestUnauthenticatedLargeMessageNotRead: an unauthenticated Invoke
// announcing and sending 60 MB is refused UNAUTHENTICATED from its headers;
// the server allocates nothing near the message's size (it never reads
// it), and the refusal is audited.
func TestUnauthenticatedLargeMessageNotRead(t *testing.T) {
	s, f := edgeServer(t, time.Hour)
	const size = 60 << 20
	// A raw HTTP/2 client streams the message from one small buffer, so
	// the process's allocations are the server's.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	call := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pr, pw := io.Pipe()
		defer pr.Close()
		go func() {
			// A valid InvokeRequest: its function name is the 60 MB.
			fn := (&udfhostv1.InvokeRequest{}).ProtoReflect().Descriptor().Fields().ByName("function").Number()
			field := protowire.AppendVarint(protowire.AppendTag(nil, fn, protowire.BytesType), size)
			hdr := make([]byte, 5, 5+len(field))
			binary.BigEndian.PutUint32(hdr[1:], uint32(len(field)+size))
			if _, err := pw.Write(append(hdr, field...)); err != nil {
				return
			}
			chunk := bytes.Repeat([]byte("a"), 64<<10)
			for sent := 0; sent < size; sent += len(chunk) {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.Addr()+udfhostv1.InvokeService_Invoke_FullMethodName, pr)
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("TE", "trailers")
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if st := resp.Header.Get("Grpc-Status"); st != "" {
			return st + " " + resp.Header.Get("Grpc-Message"), nil
		}
		return resp.Trailer.Get("Grpc-Status") + " " + resp.Trailer.Get("Grpc-Message"), nil
	}
	if _, err := call(); err != nil { // warm up the connection and pools
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const calls = 3
	for range calls {
		got, err := call()
		if err != nil {
			t.Fatal(err)
		}
		if want := strconv.Itoa(int(codes.Unauthenticated)) + " "; !strings.HasPrefix(got, want) {
			t.Fatalf("call ended with %q, want grpc-status %q", got, want)
		}
	}
	runtime.ReadMemStats(&after)
	// A read message would be 60 MiB per call; the bound leaves room for
	// the transport's frames and the test's own garbage.
	d := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB for %d refused calls of %d MiB", d>>10, calls, size>>20)
	if d > 8<<20 {
		t.Errorf("the server allocated %d MiB for %d refused %d MiB calls", d>>20, calls, size>>20)
	}
	if f.calls.Load() != 0 {
		t.Error("the handler ran")
	}
	found := false
	for _, r := range records(t, s) {
		if r.Type == audit.TypeAuthFailed && r.Resource == udfhostv1.InvokeService_Invoke_FullMethodName && r.Reason == reasonMissing {
			found = true
		}
	}
	if !found {
		t.Error("no auth.failed record")
	}
}

// TestAuthFailuresAggregated: 5,000 refused calls from one source make a
// handful of auth.failed records whose counts add up to 5,000; another
// source is counted apart; the counts are flushed at Shutdown and the
// chain verifies.
func TestAuthFailuresAggregated(t *testing.T) {
	s, _ := edgeServer(t, time.Hour)
	flood := udfhostv1.NewInvokeServiceClient(dialFrom(t, s, "127.0.0.1"))
	other := udfhostv1.NewInvokeServiceClient(dialFrom(t, s, "127.0.0.2"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n, workers = 5000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if _, err := flood.Invoke(ctx, &udfhostv1.InvokeRequest{Seq: 1}); status.Code(err) != codes.Unauthenticated {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a flood call ended with %v, want UNAUTHENTICATED", err)
	}
	for range 3 {
		if _, err := other.Invoke(ctx, &udfhostv1.InvokeRequest{Seq: 1}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("other source: %v", err)
		}
	}
	// The first failBurst failures of a source are on disk before their
	// refusals, one record each.
	firsts := map[string]int{}
	for _, r := range records(t, s) {
		if r.Type == audit.TypeAuthFailed {
			firsts[r.Details["source"]]++
		}
	}
	if firsts["127.0.0.1"] != failBurst || firsts["127.0.0.2"] != 3 {
		t.Errorf("before the flush: records per source %v, want %d and 3", firsts, failBurst)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	recs := map[string]int{}
	for _, r := range records(t, s) {
		if r.Type != audit.TypeAuthFailed {
			continue
		}
		c, err := strconv.Atoi(r.Details["count"])
		if err != nil || r.Decision != audit.Deny || r.Reason != reasonMissing {
			t.Errorf("record %+v", r)
		}
		count[r.Details["source"]] += c
		recs[r.Details["source"]]++
	}
	if count["127.0.0.1"] != n || count["127.0.0.2"] != 3 || len(count) != 2 {
		t.Errorf("counts per source %v, want 127.0.0.1:%d 127.0.0.2:3", count, n)
	}
	if recs["127.0.0.1"] > failBurst+2 {
		t.Errorf("%d records for one source's flood", recs["127.0.0.1"])
	}
	if _, err := audit.Verify(s.audit.Path()); err != nil {
		t.Errorf("audit chain: %v", err)
	}
}

// TestAuthFailuresBounded: past max sources, failures are folded into the
// "other" source; every failure is in some record's count, and a new
// interval records a source's first failure at once again.
func TestAuthFailuresBounded(t *testing.T) {
	dir := t.TempDir()
	l, err := audit.Open(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a := newAuthFailures(l, slog.New(slog.NewTextHandler(io.Discard, nil)), 2, 1)
	from := func(ip string) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 1234}})
	}
	ctx := context.Background()
	total := 0
	for i := range 10 {
		for j := 0; j <= i; j++ {
			a.note(from("10.0.0."+strconv.Itoa(i+1)), "/m", reasonInvalid)
			total++
		}
	}
	a.note(from("2001:db8::1"), "/m", reasonInvalid)
	total++
	if n := len(a.seen); n != 3 {
		t.Errorf("%d groups tracked, want 2 and other", n)
	}
	if err := a.flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.note(from("10.0.0.1"), "/m", reasonInvalid)
	total++
	sum := map[string]int{}
	recs, err := readRecords(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		c, _ := strconv.Atoi(r.Details["count"])
		sum[r.Details["source"]] += c
	}
	want := map[string]int{"10.0.0.1": 2, "10.0.0.2": 2, otherSources: total - 4}
	for k, v := range want {
		if sum[k] != v {
			t.Errorf("source %s counted %d, want %d (all: %v)", k, sum[k], v, sum)
		}
	}
	if len(sum) != len(want) {
		t.Errorf("sources %v, want %v", sum, want)
	}
	for addr, want := range map[string]string{
		"[2001:db8::1:2:3:4]:443": "2001:db8::/64",
		"10.1.2.3:5":              "10.1.2.3",
		"[::ffff:10.1.2.3]:5":     "10.1.2.3",
		"":                        "unknown",
	} {
		if src := sourceOf(addr); src != want {
			t.Errorf("source of %q is %q, want %q", addr, src, want)
		}
	}
}

func readRecords(path string) ([]audit.Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []audit.Record
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// TestShutdownTwice: a second Shutdown returns the first one's result
// instead of panicking.
func TestShutdownTwice(t *testing.T) {
	s, _ := edgeServer(t, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first := s.Shutdown(ctx)
	if first != nil {
		t.Fatalf("first Shutdown: %v", first)
	}
	if second := s.Shutdown(ctx); second != first {
		t.Fatalf("second Shutdown returned %v, the first %v", second, first)
	}
}

// failingListener fails every Accept.
type failingListener struct{ net.Listener }

func (failingListener) Accept() (net.Conn, error) { return nil, errors.New("accept: injected failure") }

// TestShutdownReportsServeError: a listener that stopped serving is in
// Shutdown's error.
func TestShutdownReportsServeError(t *testing.T) {
	s, _ := edgeServer(t, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A second gRPC Serve on a failing listener, as if the real one had
	// failed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if err := s.grpc.Serve(failingListener{ln}); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.serveFailed(err)
		}
	}()
	select {
	case <-s.serveDown: // what Run waits for, besides its context
	case <-time.After(5 * time.Second):
		t.Fatal("a failed Serve did not signal serveDown")
	}
	if err := s.Shutdown(ctx); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Shutdown returned %v, want the serve error", err)
	}
}

// TestHealth: every API service and the server as a whole are SERVING
// once started, and NOT_SERVING while Shutdown drains.
func TestHealth(t *testing.T) {
	s, f := edgeServer(t, time.Hour)
	conn := dialFrom(t, s, "")
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wantNames := []string{"", "udfhost.v1.ArtifactService", "udfhost.v1.FunctionService", "udfhost.v1.InvokeService"}
	var watches []healthpb.Health_WatchClient
	for _, name := range wantNames {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check(%q) = %v %v, want SERVING", name, r, err)
		}
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := w.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Watch(%q) = %v %v, want SERVING", name, r, err)
		}
		watches = append(watches, w)
	}
	// A call in flight keeps the server draining.
	inv := udfhostv1.NewInvokeServiceClient(conn)
	done := make(chan error, 1)
	go func() {
		_, err := inv.Invoke(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+testToken), &udfhostv1.InvokeRequest{Seq: 1})
		done <- err
	}()
	<-f.started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	for i, w := range watches {
		if r, err := w.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("while draining, Watch(%q) = %v %v, want NOT_SERVING", wantNames[i], r, err)
		}
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a call in flight", err)
	default:
	}
	close(f.release)
	if err := <-done; err != nil {
		t.Fatalf("the call in flight: %v", err)
	}
	cancel() // ends the watches, which GracefulStop waits for
	if err := <-shut; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestOpenCallsPerConnection: one connection may hold only a few calls
// open to the methods that need no token; other connections are not
// affected, and a closed call frees its place.
func TestOpenCallsPerConnection(t *testing.T) {
	s, _ := edgeServer(t, time.Hour)
	a, b := healthpb.NewHealthClient(dialFrom(t, s, "")), healthpb.NewHealthClient(dialFrom(t, s, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cancels []context.CancelFunc
	for i := range maxOpenPerConn {
		wctx, wcancel := context.WithCancel(ctx)
		cancels = append(cancels, wcancel)
		w, err := a.Watch(wctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
	}
	if _, err := a.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a call past the cap: %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, err := b.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("another connection: %v", err)
	}
	cancels[0]()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := a.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a watch ended: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range cancels {
		c()
	}
}

// TestOpenAnonymousCallsServerWide: many connections cannot multiply the
// per-connection cap: past maxOpenAnonymous calls open in all, a new one
// is refused on any connection, and a token-bearing API call is not.
func TestOpenAnonymousCallsServerWide(t *testing.T) {
	s, f := edgeServer(t, time.Hour)
	close(f.release) // the fake answers Invoke at once
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for i := range maxOpenAnonymous {
		h := healthpb.NewHealthClient(dialFrom(t, s, "")) // one call per connection
		wctx, wcancel := context.WithCancel(ctx)
		cancels = append(cancels, wcancel)
		w, err := h.Watch(wctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
	}
	fresh := healthpb.NewHealthClient(dialFrom(t, s, ""))
	if _, err := fresh.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("an anonymous call past the server-wide cap on a new connection: %v, want RESOURCE_EXHAUSTED", err)
	}
	api := udfhostv1.NewInvokeServiceClient(dialFrom(t, s, ""))
	if _, err := api.Invoke(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+testToken), &udfhostv1.InvokeRequest{Function: "f"}); err != nil {
		t.Fatalf("an authenticated call while anonymous calls are at their cap: %v", err)
	}
}

// TestHeaderListBounded: a call's metadata is bounded before anything is
// authenticated, so no anonymous caller makes the server decode and hold
// megabytes of headers: a raw HTTP/2 client that ignores the server's
// SETTINGS and sends 1 MiB of headers has its stream reset by the
// transport (before, the call reached authentication and was answered
// UNAUTHENTICATED), and ordinary metadata is untouched.
func TestHeaderListBounded(t *testing.T) {
	s, f := edgeServer(t, time.Hour)
	close(f.release) // the fake answers Invoke at once
	c := udfhostv1.NewInvokeServiceClient(dialFrom(t, s, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	auth := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+testToken, "traceparent", strings.Repeat("a", 2<<10))
	if _, err := c.Invoke(auth, &udfhostv1.InvokeRequest{Function: "f"}); err != nil {
		t.Fatalf("a call with 2 KiB of ordinary metadata: %v", err)
	}

	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, h := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", udfhostv1.InvokeService_Invoke_FullMethodName},
		{":authority", s.Addr()}, {"content-type", "application/grpc"}, {"te", "trailers"}, {"x-junk", strings.Repeat("a", 1<<20)}} {
		enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	b := block.Bytes()
	const chunk = 16 << 10
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:chunk], EndStream: true}); err != nil {
		t.Fatal(err)
	}
	for b = b[chunk:]; len(b) > 0; {
		n := min(chunk, len(b))
		if err := fr.WriteContinuation(1, n == len(b), b[:n]); err != nil {
			break // the server may close the connection first
		}
		b = b[n:]
	}
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			break // connection closed: refused too
		}
		if h, ok := frame.(*http2.HeadersFrame); ok && h.StreamID == 1 {
			t.Fatal("the server answered a call with 1 MiB of headers (it decoded them)")
		}
		if r, ok := frame.(*http2.RSTStreamFrame); ok && r.StreamID == 1 {
			break
		}
		if _, ok := frame.(*http2.GoAwayFrame); ok {
			break
		}
	}
	if _, err := c.Invoke(auth, &udfhostv1.InvokeRequest{Function: "f"}); err != nil {
		t.Fatalf("after a refused oversized header: %v", err)
	}
}
