package egress

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
)

// TestHappyPath: the server sees the grant's Host, the path, the
// allowed headers, the body and the secret; the guest sees the status,
// the allowed response headers and the body, never the secret; both
// audit records carry the facts.
func TestHappyPath(t *testing.T) {
	srv := startServer(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Set-Cookie", "session=1")
		w.Header().Set("X-Request-Id", r.Header.Get("Authorization")) // an echo of the secret
		w.Header().Set("X-Internal", "x")
		w.WriteHeader(201)
		fmt.Fprintf(w, "got %s", r.URL.Path)
	}, nil)
	c := conns(t, fmt.Sprintf("{name: lookup, environment: pub, destination: \"http://127.0.0.1:%d\", methods: [GET, POST], cluster: public, secret_env: EGRESS_SECRET, secret_header: Authorization}", srv.port()))["pub/lookup"]
	rec := newRecorder(t)
	b := New(Config{Audit: rec})
	defer b.Close()

	resp, err := mustDo(t, b, Request{
		Pod: pod, Function: "pub/enrich", RequestID: "req-1", EnvVisibility: policies.Public, Conn: c,
		Method: "POST", Path: "/keys/k1?x=1%202",
		Header: http.Header{"Content-Type": {"application/json"}, "accept": {"*/*"}},
		Body:   []byte(`{"v":1}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 201 || string(resp.Body) != "got /keys/k1" {
		t.Errorf("response %d %q", resp.Status, resp.Body)
	}
	resp.Header.Del("Date")
	if got := fmt.Sprint(resp.Header); got != "map[Content-Type:[text/plain]]" {
		t.Errorf("response headers %s; want Content-Type only (Set-Cookie, unknown and secret-echoing headers dropped)", got)
	}
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d requests", len(reqs))
	}
	r := reqs[0]
	wantHost := fmt.Sprintf("127.0.0.1:%d", srv.port())
	if r.Method != "POST" || r.Host != wantHost || r.URI != "/keys/k1?x=1%202" || r.Body != `{"v":1}` {
		t.Errorf("server saw %+v", r)
	}
	if r.Header.Get("Authorization") != secret {
		t.Errorf("server saw Authorization %q; want the connection's secret", r.Header.Get("Authorization"))
	}
	if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Accept") != "*/*" || r.Header.Get("User-Agent") != userAgent {
		t.Errorf("server saw headers %v", r.Header)
	}
	evs := rec.events()
	if len(evs) != 2 {
		t.Fatalf("%d audit events; want 2 (sending, answered)", len(evs))
	}
	for i, want := range []string{"sending POST to " + wantHost, "answered 201"} {
		e := evs[i]
		if e.Type != audit.TypeEgressRequest || e.Decision != audit.Allow || e.Pod != pod || e.Resource != "connection/pub/lookup" || e.Reason != want || e.RequestID != "req-1" {
			t.Errorf("event %d: %+v; want reason %q", i, e, want)
		}
		d := e.Details
		if d["function"] != "pub/enrich" || d["method"] != "POST" || d["destination"] != c.Destination() || d["addr"] != wantHost || d["request_bytes"] != "7" || d["request"] != "1" {
			t.Errorf("event %d details %v", i, d)
		}
	}
	if d := evs[1].Details; d["status"] != "201" || d["response_bytes"] != "12" {
		t.Errorf("outcome details %v", d)
	}
}

// TestExfiltrationRule: a function whose environment is private (it
// became private after the grant was written) may GET a public cluster
// but not POST to it; a public environment may not use a private cluster
// at all. Each refusal is audited as a denial naming the rule.
func TestExfiltrationRule(t *testing.T) {
	srv := startServer(t, "127.0.0.1:0", nil, nil)
	cs := conns(t,
		fmt.Sprintf("{name: pubc, environment: pub, destination: \"http://127.0.0.1:%d\", methods: [GET, POST], cluster: public}", srv.port()),
		fmt.Sprintf("{name: privc, environment: priv, destination: \"http://127.0.0.1:%d\", methods: [GET, POST], cluster: private}", srv.port()),
	)
	rec := newRecorder(t)
	b := New(Config{Audit: rec})
	defer b.Close()
	tests := []struct {
		name    string
		from    policies.Visibility
		conn    string
		method  string
		refused string // "" for allowed
	}{
		{"private reads public", policies.Private, "pub/pubc", "GET", ""},
		{"private writes public", policies.Private, "pub/pubc", "POST", "a private environment may read a public cluster (GET, HEAD) but never write to it (POST)"},
		{"public writes public", policies.Public, "pub/pubc", "POST", ""},
		{"public reads private", policies.Public, "priv/privc", "GET", "a public environment may not use a private cluster"},
		{"private writes private", policies.Private, "priv/privc", "POST", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.requests())
			c := cs[tc.conn]
			_, err := mustDo(t, b, Request{Pod: pod, Function: "f", EnvVisibility: tc.from, Conn: c, Method: tc.method, Path: "/"})
			if tc.refused == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkAudit(t, rec, audit.Allow, "connection/"+tc.conn, "answered 200")
				return
			}
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tc.refused) {
				t.Fatalf("err %v; want ErrDenied naming %q", err, tc.refused)
			}
			checkAudit(t, rec, audit.Deny, "connection/"+tc.conn, tc.refused)
			if len(srv.requests()) != before {
				t.Error("a refused request reached the server")
			}
		})
	}
}

// TestDenied: what the guest chooses cannot widen the grant. Each case
// is refused before any network, audited, and names its problem.
func TestDenied(t *testing.T) {
	srv := startServer(t, "127.0.0.1:0", nil, nil)
	other := startServer(t, "127.0.0.2:0", nil, nil)
	p := srv.port()
	cs := conns(t,
		fmt.Sprintf("{name: url, environment: pub, destination: \"http://127.0.0.1:%d\", methods: [GET], cluster: public, secret_env: EGRESS_SECRET, secret_header: X-Api-Key}", p),
		fmt.Sprintf("{name: cidr, environment: pub, destination: \"http://127.0.0.0/30\", ports: [%d], methods: [GET], cluster: public}", p),
		// A wide prefix that contains loopback without naming it.
		fmt.Sprintf("{name: wide, environment: pub, destination: \"http://96.0.0.0/3\", ports: [%d], methods: [GET], cluster: public}", p),
	)
	rec := newRecorder(t)
	b := New(Config{Audit: rec})
	defer b.Close()
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	tests := []struct {
		name string
		conn string
		req  Request
		want string
	}{
		{"method not granted", "url", Request{Method: "DELETE", Path: "/"}, "grants GET, not DELETE"},
		{"lower-case method", "url", Request{Method: "get", Path: "/"}, `method "get" is not an upper-case HTTP method`},
		{"CONNECT", "url", Request{Method: "CONNECT", Path: "/"}, "grants GET, not CONNECT"},
		{"long method", "url", Request{Method: strings.Repeat("G", 1<<20), Path: "/"}, `method "GGGGGGGGGGGGGGGG" is not an upper-case HTTP method`},
		{"method with CRLF", "url", Request{Method: "GET /x HTTP/1.1\r\n", Path: "/"}, "is not an upper-case HTTP method"},
		{"empty path", "url", Request{Method: "GET"}, "path is empty"},
		{"relative path", "url", Request{Method: "GET", Path: "keys"}, "must start with \"/\""},
		{"absolute URL", "url", Request{Method: "GET", Path: "http://127.0.0.2/"}, "must start with \"/\""},
		{"scheme-relative host", "url", Request{Method: "GET", Path: fmt.Sprintf("//127.0.0.2:%d/", other.port())}, "names a host"},
		{"CRLF in path", "url", Request{Method: "GET", Path: "/a\r\nHost: evil"}, "byte 0x0d"},
		{"space in path", "url", Request{Method: "GET", Path: "/a b"}, "byte 0x20"},
		{"fragment", "url", Request{Method: "GET", Path: "/a#b"}, "byte 0x23"},
		{"backslash", "url", Request{Method: "GET", Path: "/\\127.0.0.2/"}, "byte 0x5c"},
		{"long path", "url", Request{Method: "GET", Path: "/" + strings.Repeat("a", maxPath)}, "more than 8192"},
		{"Host header", "url", Request{Method: "GET", Path: "/", Header: http.Header{"host": {"evil.example"}}}, `header "host" may not be sent`},
		{"Authorization", "url", Request{Method: "GET", Path: "/", Header: http.Header{"Authorization": {"Bearer mine"}}}, `"Authorization" may not be sent`},
		{"the secret header", "url", Request{Method: "GET", Path: "/", Header: http.Header{"X-Api-Key": {"mine"}}}, "is the connection's secret header"},
		{"forwarded", "url", Request{Method: "GET", Path: "/", Header: http.Header{"X-Forwarded-For": {"1.2.3.4"}}}, "may not be sent"},
		{"framing", "url", Request{Method: "GET", Path: "/", Header: http.Header{"Transfer-Encoding": {"chunked"}}}, "may not be sent"},
		{"control in value", "url", Request{Method: "GET", Path: "/", Header: http.Header{"Accept": {"a\r\nHost: evil"}}}, "control character"},
		{"too many headers", "url", Request{Method: "GET", Path: "/", Header: http.Header{"Accept": make([]string, maxHeaders+1)}}, "more than 32 values"},
		{"address on a URL grant", "url", Request{Method: "GET", Path: "/", Addr: ap(fmt.Sprintf("127.0.0.2:%d", other.port()))}, "may not choose an address"},
		{"CIDR without address", "cidr", Request{Method: "GET", Path: "/"}, "needs the request to choose an address"},
		{"address outside the prefix", "cidr", Request{Method: "GET", Path: "/", Addr: ap(fmt.Sprintf("127.0.0.9:%d", p))}, "is outside the grant"},
		{"port not granted", "cidr", Request{Method: "GET", Path: "/", Addr: ap(fmt.Sprintf("127.0.0.1:%d", other.port()))}, "is outside the grant"},
		{"loopback in a wide prefix", "wide", Request{Method: "GET", Path: "/", Addr: ap(fmt.Sprintf("127.0.0.1:%d", p))}, "is loopback, and the connection does not name it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Pod, req.Function, req.EnvVisibility, req.Conn = pod, "pub/f", policies.Public, cs["pub/"+tc.conn]
			_, err := mustDo(t, b, req)
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v; want ErrDenied containing %q", err, tc.want)
			}
			checkAudit(t, rec, audit.Deny, "connection/pub/"+tc.conn, tc.want)
		})
	}
	if n := len(srv.requests()) + len(other.requests()); n != 0 {
		t.Errorf("refused requests reached a server %d times", n)
	}
	// The CIDR grant's happy path: the address chosen, its port by default.
	resp, err := mustDo(t, b, Request{Pod: pod, Function: "pub/f", EnvVisibility: policies.Public, Conn: cs["pub/cidr"], Method: "GET", Path: "/x", Addr: ap("127.0.0.1:0")})
	if err != nil || resp.Status != 200 {
		t.Fatalf("CIDR request: %v %v", resp, err)
	}
	if r := srv.requests(); len(r) != 1 || r[0].Host != fmt.Sprintf("127.0.0.1:%d", p) {
		t.Errorf("server saw %+v", r)
	}
}
