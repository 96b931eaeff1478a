package egress

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
)

// secret is every test connection's secret; cred is its credential part,
// which a destination could echo alone.
const (
	secret = "Bearer egress-test-secret-7f3a9c0d2b"
	cred   = "egress-test-secret-7f3a9c0d2b"
)

// recorder is the audit: a real audit.Log in the test's directory, with a
// copy of each event in memory. Record fails while fail is set.
type recorder struct {
	log  *audit.Log
	path string
	mu   sync.Mutex
	evs  []audit.Event
	fail error
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{log: l, path: path}
	t.Cleanup(func() {
		l.Close()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), cred) {
			t.Errorf("the audit log file holds the secret:\n%s", raw)
		}
		for _, e := range r.events() {
			b, _ := json.Marshal(e)
			if strings.Contains(string(b), cred) {
				t.Errorf("an audit event holds the secret: %s", b)
			}
		}
	})
	return r
}

func (r *recorder) Record(ctx context.Context, e audit.Event) error {
	r.mu.Lock()
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		return fail
	}
	if err := r.log.Record(ctx, e); err != nil {
		return err
	}
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
	return nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *recorder) events() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.evs...)
}

// last returns the last event, failing the test if there is none.
func (r *recorder) last(t *testing.T) audit.Event {
	t.Helper()
	evs := r.events()
	if len(evs) == 0 {
		t.Fatal("no audit event")
	}
	return evs[len(evs)-1]
}

// resolver answers names from a script: the i-th lookup of a name gets
// its i-th answer (the last one again once the script runs out).
type resolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	calls   map[string]int
}

func newResolver(answers map[string][]string) *resolver {
	r := &resolver{answers: map[string][][]netip.Addr{}, calls: map[string]int{}}
	for name, seq := range answers {
		for _, a := range seq {
			var as []netip.Addr
			for _, s := range strings.Split(a, ",") {
				as = append(as, netip.MustParseAddr(s))
			}
			r.answers[name] = append(r.answers[name], as)
		}
	}
	return r
}

func (r *resolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	i := min(r.calls[host], len(seq)-1)
	r.calls[host]++
	return seq[i], nil
}

func (r *resolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

// seen is one request as a test server received it.
type seen struct {
	Method, Host, URI, SNI, Body string
	Header                       http.Header
}

// server is a real HTTP server on a loopback address that records what
// it receives and answers with handler (default: 200 "ok").
type server struct {
	addr netip.AddrPort
	srv  *http.Server
	mu   sync.Mutex
	reqs []seen
	snis []string
}

// startServer listens on ip:port (port 0: any) and serves h; tlsCert, if
// set, makes it https, recording each ClientHello's server name.
func startServer(t testing.TB, hostport string, h http.HandlerFunc, tlsCert *tls.Certificate) *server {
	t.Helper()
	ln, err := net.Listen("tcp", hostport)
	if err != nil {
		t.Fatalf("listen %s: %v", hostport, err)
	}
	s := &server{addr: netip.MustParseAddrPort(ln.Addr().String())}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sn := ""
		if r.TLS != nil {
			sn = r.TLS.ServerName
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, seen{Method: r.Method, Host: r.Host, URI: r.RequestURI, SNI: sn, Body: string(body), Header: r.Header.Clone()})
		s.mu.Unlock()
		if h == nil {
			io.WriteString(w, "ok")
			return
		}
		h(w, r)
	}), ErrorLog: nil}
	if tlsCert != nil {
		s.srv.TLSConfig = &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			s.mu.Lock()
			s.snis = append(s.snis, hello.ServerName)
			s.mu.Unlock()
			return nil, nil
		}, Certificates: []tls.Certificate{*tlsCert}}
		go s.srv.ServeTLS(ln, "", "")
	} else {
		go s.srv.Serve(ln)
	}
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *server) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.reqs...)
}

func (s *server) port() uint16 { return s.addr.Port() }

// conns loads connection entries (YAML flow mappings) through the policy
// loader, with environments pub (public) and priv (private); a
// connection with `secret_env: EGRESS_SECRET` gets the test's secret.
func conns(t testing.TB, items ...string) map[string]*policies.Connection {
	t.Helper()
	t.Setenv("EGRESS_SECRET", secret)
	src := "org: acme\nenvironments:\n  - {name: pub, visibility: public}\n  - {name: priv, visibility: private}\nconnections:\n"
	for _, it := range items {
		src += "  - " + it + "\n"
	}
	p, err := policies.Parse("p.yaml", []byte(src), t.TempDir())
	if err != nil {
		t.Fatalf("policy: %v\n%s", err, src)
	}
	return p.Connections
}

// mustDo runs req and checks what every outcome must satisfy: an error
// names the connection and wraps one sentinel, and nothing the guest
// gets back carries the secret.
func mustDo(t *testing.T, b *Broker, req Request) (*Response, error) {
	t.Helper()
	resp, err := b.Do(context.Background(), req)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is not an *Error", err)
		}
		if want := "connection " + req.Conn.Env + "/" + req.Conn.Name + ": "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q does not start with %q", err, want)
		}
		n := 0
		for _, s := range []error{ErrDenied, ErrUnavailable, ErrOverloaded, ErrTooLarge} {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("error %q wraps %d sentinels", err, n)
		}
		if strings.Contains(err.Error(), cred) {
			t.Errorf("error holds the secret: %q", err)
		}
		return nil, err
	}
	if strings.Contains(fmt.Sprint(resp.Header), cred) || strings.Contains(string(resp.Body), cred) {
		t.Errorf("response holds the secret: %v %q", resp.Header, resp.Body)
	}
	return resp, nil
}

// checkAudit asserts the last audit event: type, decision, resource, pod
// and that reason contains want.
func checkAudit(t *testing.T, r *recorder, decision, resource, want string) audit.Event {
	t.Helper()
	e := r.last(t)
	if e.Type != audit.TypeEgressRequest || e.Decision != decision || e.Resource != resource || e.Pod == "" {
		t.Errorf("audit event %+v; want %s %s on %s", e, audit.TypeEgressRequest, decision, resource)
	}
	if !strings.Contains(e.Reason, want) {
		t.Errorf("audit reason %q does not contain %q", e.Reason, want)
	}
	return e
}

const pod = "spiffe://acme/pod/p1"
