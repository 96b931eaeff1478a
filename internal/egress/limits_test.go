package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
)

func oneConn(t testing.TB, port uint16) *policies.Connection {
	return conns(t, fmt.Sprintf("{name: c, environment: pub, destination: \"http://127.0.0.1:%d\", methods: [GET, HEAD, POST], cluster: public, secret_env: EGRESS_SECRET, secret_header: Authorization}", port))["pub/c"]
}

// TestSizeLimits: a request body over the limit is refused before any
// network; a response over the limit is cut off at the limit, whether
// announced by Content-Length or not.
func TestSizeLimits(t *testing.T) {
	const max = 1000
	srv := startServer(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		n := 0
		fmt.Sscan(r.URL.Query().Get("n"), &n)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", fmt.Sprint(n))
		}
		for i := 0; i < n; i += 100 {
			w.Write([]byte(strings.Repeat("x", min(100, n-i))))
			w.(http.Flusher).Flush()
		}
	}, nil)
	c := oneConn(t, srv.port())
	rec := newRecorder(t)
	b := New(Config{Audit: rec, Limits: Limits{MaxRequestBytes: max, MaxResponseBytes: max}})
	defer b.Close()

	req := get(c)
	req.Method, req.Body = "POST", make([]byte, max+1)
	if _, err := mustDo(t, b, req); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "request body of 1001 bytes is over the limit of 1000 bytes") {
		t.Fatalf("big request: %v", err)
	}
	checkAudit(t, rec, audit.Deny, "connection/pub/c", "over the limit")
	if len(srv.requests()) != 0 {
		t.Fatal("an oversize request was sent")
	}
	// A HEAD announces the length of a body it does not send.
	req = get(c)
	req.Method, req.Path = "HEAD", "/?n=5000"
	if resp, err := mustDo(t, b, req); err != nil || resp.Status != 200 || len(resp.Body) != 0 {
		t.Fatalf("HEAD of a large body: %v %v", resp, err)
	}
	for _, tc := range []struct {
		path string
		want string // "" allowed
	}{
		{"/?n=1000", ""},
		{"/?n=1000&chunked=1", ""},
		{"/?n=5000", "response of 5000 bytes is over the limit of 1000 bytes"},
		{"/?n=5000&chunked=1", "response is over the limit of 1000 bytes"},
	} {
		req := get(c)
		req.Path = tc.path
		resp, err := mustDo(t, b, req)
		if tc.want == "" {
			if err != nil || len(resp.Body) != max {
				t.Errorf("%s: %v", tc.path, err)
			}
			continue
		}
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v; want ErrTooLarge containing %q", tc.path, err, tc.want)
		}
		e := checkAudit(t, rec, audit.Error, "connection/pub/c", tc.want)
		if e.Details["status"] != "200" {
			t.Errorf("audit details %v", e.Details)
		}
	}
}

// TestSlowAndDown: a destination that does not answer in time, or does
// not listen, is ErrUnavailable naming the connection, audited as an
// error, and Do returns near the timeout.
func TestSlowAndDown(t *testing.T) {
	release := make(chan struct{})
	srv := startServer(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/trickle" {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, nil)
	defer close(release)
	const timeout = 300 * time.Millisecond
	rec := newRecorder(t)
	b := New(Config{Audit: rec, Limits: Limits{Timeout: timeout}})
	defer b.Close()
	for _, path := range []string{"/slow", "/trickle"} {
		req := get(oneConn(t, srv.port()))
		req.Path = path
		start := time.Now()
		_, err := mustDo(t, b, req)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no complete answer in time (limit 300ms)") {
			t.Fatalf("%s: %v", path, err)
		}
		// A deadline to meet, not a measurement: far past the timeout
		// means the timeout did not apply.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: Do returned after %v; the timeout is %v", path, d, timeout)
		}
		checkAudit(t, rec, audit.Error, "connection/pub/c", "no complete answer in time")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err = mustDo(t, b, get(oneConn(t, uint16(port))))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("down: %v", err)
	}
	checkAudit(t, rec, audit.Error, "connection/pub/c", "connection refused")
}

// TestConcurrency: the N+1th concurrent request of one pod is refused
// with ErrOverloaded and a retry hint while another pod is still served;
// the broker-wide cap refuses every pod.
func TestConcurrency(t *testing.T) {
	var inflight sync.WaitGroup
	release := make(chan struct{})
	srv := startServer(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			inflight.Done()
			<-release
		}
	}, nil)
	c := oneConn(t, srv.port())
	rec := newRecorder(t)
	b := New(Config{Audit: rec, Limits: Limits{PerPodConcurrency: 2, MaxConcurrency: 3}})
	defer b.Close()

	var done sync.WaitGroup
	block := func(pod string) {
		inflight.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req := get(c)
			req.Pod, req.Path = pod, "/block"
			if _, err := b.Do(context.Background(), req); err != nil {
				t.Errorf("blocked request: %v", err)
			}
		}()
	}
	podA, podB, podC := "spiffe://acme/pod/a", "spiffe://acme/pod/b", "spiffe://acme/pod/c"
	block(podA)
	block(podA)
	inflight.Wait()

	req := get(c)
	req.Pod = podA
	_, err := mustDo(t, b, req)
	var e *Error
	if !errors.Is(err, ErrOverloaded) || !errors.As(err, &e) || e.RetryAfter() <= 0 || e.Shared || !strings.Contains(err.Error(), "the pod has 2 requests in flight, its limit; retry later") {
		t.Fatalf("pod A's third request: %v", err)
	}
	checkAudit(t, rec, audit.Deny, "connection/pub/c", "the pod has 2 requests in flight")
	req.Pod = podB
	if _, err := mustDo(t, b, req); err != nil {
		t.Fatalf("pod B while A is full: %v", err)
	}
	block(podB)
	inflight.Wait()
	req.Pod = podC
	if _, err := mustDo(t, b, req); !errors.Is(err, ErrOverloaded) || !errors.As(err, &e) || !e.Shared || !strings.Contains(err.Error(), "the broker has 3 requests in flight") {
		t.Fatalf("pod C with the broker full: %v (want Shared)", err)
	}
	close(release)
	done.Wait()
	if _, err := mustDo(t, b, req); err != nil {
		t.Fatalf("after the others finished: %v", err)
	}
}

// TestAuditFailsClosed: an allowed request whose record cannot be
// written is not sent; a denial that cannot be recorded still denies.
func TestAuditFailsClosed(t *testing.T) {
	srv := startServer(t, "127.0.0.1:0", nil, nil)
	c := oneConn(t, srv.port())
	rec := newRecorder(t)
	rec.setFail(errors.New("disk full"))
	b := New(Config{Audit: rec})
	defer b.Close()
	_, err := mustDo(t, b, get(c))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "the audit log cannot record the request, so it is not sent: disk full") {
		t.Fatalf("allowed, unaudited: %v", err)
	}
	if len(srv.requests()) != 0 {
		t.Fatal("an unaudited request was sent")
	}
	req := get(c)
	req.Method = "DELETE"
	if _, err := mustDo(t, b, req); !errors.Is(err, ErrDenied) {
		t.Fatalf("denied, unaudited: %v", err)
	}
}

// TestEchoedSecret: a destination that reflects the secret in its body
// has its response withheld.
func TestEchoedSecret(t *testing.T) {
	srv := startServer(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get("Authorization")
		if r.URL.Path == "/cred" {
			v = strings.TrimPrefix(v, "Bearer ")
		}
		fmt.Fprintf(w, `{"headers":{"Authorization":%q}}`, v)
	}, nil)
	rec := newRecorder(t)
	b := New(Config{Audit: rec})
	defer b.Close()
	for _, path := range []string{"/headers", "/cred"} {
		req := get(oneConn(t, srv.port()))
		req.Path = path
		if _, err := mustDo(t, b, req); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "echoed the connection's secret") {
			t.Fatalf("%s: %v", path, err)
		}
		checkAudit(t, rec, audit.Deny, "connection/pub/c", "echoed")
	}
}

// TestNoConnection: a caller that names no connection gets a denial, on
// record.
func TestNoConnection(t *testing.T) {
	rec := newRecorder(t)
	b := New(Config{Audit: rec})
	_, err := b.Do(context.Background(), Request{Pod: pod, Function: "pub/f", Method: "GET", Path: "/"})
	if !errors.Is(err, ErrDenied) || err.Error() != "connection (none)/(none): no connection given (egress denied)" {
		t.Fatalf("err %v", err)
	}
	checkAudit(t, rec, audit.Deny, "connection/(none)/(none)", "no connection given")
}

// TestRequestLimits: a request's own limits (its pool's) replace the
// broker's where they are set, and only there.
func TestRequestLimits(t *testing.T) {
	srv := startServer(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 2000)))
	}, nil)
	c := oneConn(t, srv.port())
	b := New(Config{Audit: newRecorder(t)})
	defer b.Close()
	req := get(c)
	if resp, err := mustDo(t, b, req); err != nil || len(resp.Body) != 2000 {
		t.Fatalf("with the broker's limits: %v %v", resp, err)
	}
	req.Limits = Limits{MaxResponseBytes: 1024}
	if _, err := mustDo(t, b, req); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over the limit of 1024 bytes") {
		t.Fatalf("with the pool's response limit: %v", err)
	}
	req.Limits = Limits{MaxRequestBytes: 10}
	req.Method, req.Body = "POST", make([]byte, 11)
	if _, err := mustDo(t, b, req); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over the limit of 10 bytes") {
		t.Fatalf("with the pool's request limit: %v", err)
	}
	if got := req.Limits.over(b.Limits()); got.Timeout != DefaultTimeout || got.MaxConcurrency != DefaultMaxConcurrency || got.PerPodConcurrency != DefaultPerPodConcurrency {
		t.Errorf("unset fields: %+v", got)
	}
}
