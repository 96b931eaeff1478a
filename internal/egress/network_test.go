package egress

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
)

func get(c *policies.Connection) Request {
	return Request{Pod: pod, Function: "pub/f", EnvVisibility: policies.Public, Conn: c, Method: "GET", Path: "/"}
}

// TestDNS: a DNS-named grant resolves through the broker's resolver;
// every address of the answer is checked; the request goes to the address
// checked, and the transport never resolves again.
func TestDNS(t *testing.T) {
	a := startServer(t, "127.0.0.1:0", nil, nil)
	// The same port on another loopback address: where a rebinding
	// answer would send the request.
	b2 := startServer(t, fmt.Sprintf("127.0.0.2:%d", a.port()), nil, nil)
	c := conns(t, fmt.Sprintf("{name: svc, environment: pub, destination: \"http://svc.test:%d\", methods: [GET], cluster: public}", a.port()))["pub/svc"]
	only1 := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name    string
		answers []string
		private []netip.Prefix
		want    string // "" allowed
		kind    error
	}{
		{"allowed name, operator's range", []string{"127.0.0.1"}, only1, "", nil},
		{"loopback not named", []string{"127.0.0.1"}, nil, "svc.test resolves to a refused address: address 127.0.0.1 is loopback, and the connection does not name it", ErrDenied},
		{"metadata address", []string{"169.254.169.254"}, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, "address 169.254.169.254 is link-local, home of cloud metadata services, which no connection may reach", ErrDenied},
		{"metadata v6", []string{"fd00:ec2::254"}, nil, "a cloud metadata service", ErrDenied},
		{"mapped metadata", []string{"::ffff:169.254.169.254"}, nil, "169.254.169.254 is link-local", ErrDenied},
		{"one bad address in the answer", []string{"127.0.0.1,169.254.169.254"}, only1, "169.254.169.254 is link-local", ErrDenied},
		{"private range", []string{"10.0.0.1"}, only1, "10.0.0.1 is private", ErrDenied},
		{"NAT64 of metadata", []string{"64:ff9b::a9fe:a9fe"}, only1, "NAT64", ErrDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t)
			br := New(Config{Audit: rec, Resolver: newResolver(map[string][]string{"svc.test": tc.answers}), ResolvePrivate: tc.private})
			defer br.Close()
			before := len(a.requests())
			resp, err := mustDo(t, br, get(c))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if resp.Status != 200 {
					t.Errorf("status %d", resp.Status)
				}
				r := a.requests()
				if len(r) != before+1 || r[len(r)-1].Host != fmt.Sprintf("svc.test:%d", a.port()) {
					t.Errorf("server saw %+v; want Host svc.test:%d", r, a.port())
				}
				return
			}
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v; want %v containing %q", err, tc.kind, tc.want)
			}
			checkAudit(t, rec, audit.Deny, "connection/pub/svc", tc.want)
			if len(a.requests()) != before {
				t.Error("a refused request reached the server")
			}
		})
	}
	t.Run("unknown name", func(t *testing.T) {
		rec := newRecorder(t)
		br := New(Config{Audit: rec, Resolver: newResolver(nil)})
		_, err := mustDo(t, br, get(c))
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "resolving svc.test") {
			t.Fatalf("err %v", err)
		}
		checkAudit(t, rec, audit.Error, "connection/pub/svc", "resolving svc.test")
	})
	t.Run("answer changes between check and connect", func(t *testing.T) {
		// Every lookup after the first answers 127.0.0.2, which the
		// operator's range does not admit: were the transport to resolve
		// again, the request would reach b2.
		res := newResolver(map[string][]string{"svc.test": {"127.0.0.1", "127.0.0.2"}})
		rec := newRecorder(t)
		br := New(Config{Audit: rec, Resolver: res, ResolvePrivate: only1})
		defer br.Close()
		before := len(a.requests())
		if _, err := mustDo(t, br, get(c)); err != nil {
			t.Fatal(err)
		}
		if res.count("svc.test") != 1 || len(a.requests()) != before+1 || len(b2.requests()) != 0 {
			t.Errorf("lookups %d, first address %d requests, second %d; want 1, 1, 0", res.count("svc.test"), len(a.requests())-before, len(b2.requests()))
		}
		if e := rec.last(t); e.Details["addr"] != a.addr.String() {
			t.Errorf("audited addr %q; want %s", e.Details["addr"], a.addr)
		}
		// The next request sees the new answer, checks it and refuses.
		_, err := mustDo(t, br, get(c))
		if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "127.0.0.2 is loopback") {
			t.Errorf("second request: %v", err)
		}
		if len(b2.requests()) != 0 {
			t.Error("the rebinding answer was connected to")
		}
	})
}

// TestRedirectNotFollowed: a 3xx is returned to the guest as it is; the
// broker never requests its Location, wherever it points.
func TestRedirectNotFollowed(t *testing.T) {
	other := startServer(t, "127.0.0.2:0", nil, nil)
	for _, loc := range []string{
		fmt.Sprintf("http://127.0.0.2:%d/steal", other.port()),
		"http://169.254.169.254/latest/meta-data/",
		"/same-host-too",
	} {
		srv := startServer(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, loc, http.StatusFound)
		}, nil)
		c := conns(t, fmt.Sprintf("{name: r, environment: pub, destination: \"http://127.0.0.1:%d\", methods: [GET], cluster: public, secret_env: EGRESS_SECRET, secret_header: Authorization}", srv.port()))["pub/r"]
		rec := newRecorder(t)
		b := New(Config{Audit: rec})
		resp, err := mustDo(t, b, get(c))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusFound || resp.Header.Get("Location") != loc {
			t.Errorf("response %d %v; want 302 to %s", resp.Status, resp.Header, loc)
		}
		if n := len(srv.requests()); n != 1 {
			t.Errorf("%s: the destination saw %d requests; want 1", loc, n)
		}
		checkAudit(t, rec, audit.Allow, "connection/pub/r", "answered 302")
		b.Close()
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("the redirect target saw %d requests", n)
	}
}

// TestTLS: https is verified against RootCAs, with the grant's host as
// SNI and Host; a guest cannot choose either.
func TestTLS(t *testing.T) {
	// httptest's certificate is for example.com, 127.0.0.1 and ::1.
	ts := httptest.NewTLSServer(nil)
	cert := ts.TLS.Certificates[0]
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	ts.Close()
	srv := startServer(t, "127.0.0.1:0", nil, &cert)
	p := srv.port()
	cs := conns(t,
		fmt.Sprintf("{name: byname, environment: pub, destination: \"https://example.com:%d\", methods: [GET], cluster: public, secret_env: EGRESS_SECRET, secret_header: Authorization}", p),
		fmt.Sprintf("{name: wrongname, environment: pub, destination: \"https://other.test:%d\", methods: [GET], cluster: public}", p),
		fmt.Sprintf("{name: byaddr, environment: pub, destination: \"https://127.0.0.1:%d\", methods: [GET], cluster: public}", p),
	)
	res := newResolver(map[string][]string{"example.com": {"127.0.0.1"}, "other.test": {"127.0.0.1"}})
	rec := newRecorder(t)
	b := New(Config{Audit: rec, Resolver: res, RootCAs: pool, ResolvePrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	defer b.Close()

	req := get(cs["pub/byname"])
	req.Header = http.Header{"Host": {"evil.example"}}
	if _, err := mustDo(t, b, req); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), `header "Host" may not be sent`) {
		t.Fatalf("guest Host: %v", err)
	}
	if _, err := mustDo(t, b, get(cs["pub/byname"])); err != nil {
		t.Fatal(err)
	}
	r := srv.requests()
	if len(r) != 1 || r[0].SNI != "example.com" || r[0].Host != fmt.Sprintf("example.com:%d", p) || r[0].Header.Get("Authorization") != secret {
		t.Fatalf("server saw %+v", r)
	}
	// An address grant is verified against the certificate's IP SANs and
	// sends no SNI (TLS has none for addresses).
	if _, err := mustDo(t, b, get(cs["pub/byaddr"])); err != nil {
		t.Fatal(err)
	}
	if r := srv.requests(); len(r) != 2 || r[1].SNI != "" || r[1].Host != fmt.Sprintf("127.0.0.1:%d", p) {
		t.Errorf("server saw %+v", r)
	}
	// A certificate that is not the grant's host's fails verification.
	_, err := mustDo(t, b, get(cs["pub/wrongname"]))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "other.test") {
		t.Fatalf("wrong certificate: %v", err)
	}
	checkAudit(t, rec, audit.Error, "connection/pub/wrongname", "certificate")
	// Without the test CA (the system's roots), nothing verifies.
	b2 := New(Config{Audit: rec, Resolver: res, ResolvePrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	defer b2.Close()
	if _, err := mustDo(t, b2, get(cs["pub/byname"])); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("system roots: %v", err)
	}
	srv.mu.Lock()
	snis := fmt.Sprint(srv.snis)
	srv.mu.Unlock()
	if want := "[example.com  other.test example.com]"; snis != want {
		t.Errorf("ClientHello server names %s; want %s", snis, want)
	}
}

// TestIPv6Loopback: an IPv6 literal grant gets a bracketed Host.
func TestIPv6Loopback(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	srv := startServer(t, "[::1]:0", nil, nil)
	cs := conns(t,
		fmt.Sprintf("{name: v6, environment: pub, destination: \"http://[::1]:%d\", methods: [GET], cluster: public}", srv.port()),
		fmt.Sprintf("{name: v6cidr, environment: pub, destination: \"http://::1/128\", ports: [%d], methods: [GET], cluster: public}", srv.port()),
	)
	rec := newRecorder(t)
	b := New(Config{Audit: rec})
	defer b.Close()
	if _, err := mustDo(t, b, get(cs["pub/v6"])); err != nil {
		t.Fatal(err)
	}
	req := get(cs["pub/v6cidr"])
	req.Addr = netip.MustParseAddrPort("[::1]:0")
	if _, err := mustDo(t, b, req); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[::1]:%d", srv.port())
	for _, r := range srv.requests() {
		if r.Host != want {
			t.Errorf("Host %q; want %q", r.Host, want)
		}
	}
	if n := len(srv.requests()); n != 2 {
		t.Errorf("%d requests", n)
	}
}
