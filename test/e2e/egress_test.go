package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// seenRequest is what the test's lookup service saw of one request.
type seenRequest struct {
	Method, Path, Host, Auth, Body string
}

// lookupService is a real HTTP server on loopback standing for an
// external system: GET /<key> answers "value-of-<key>", POST answers 201.
type lookupService struct {
	addr string
	mu   sync.Mutex
	seen []seenRequest
}

func startLookupService(t *testing.T) *lookupService {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := &lookupService{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ls.mu.Lock()
		ls.seen = append(ls.seen, seenRequest{r.Method, r.URL.Path, r.Host, r.Header.Get("Authorization"), string(body)})
		ls.mu.Unlock()
		switch {
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
		case r.URL.Path == "/missing":
			http.NotFound(w, r)
		default:
			io.WriteString(w, "value-of-"+strings.TrimPrefix(r.URL.Path, "/"))
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ls
}

func (ls *lookupService) requests() []seenRequest {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append([]seenRequest(nil), ls.seen...)
}

// TestConnectorEgress runs the enrich connector through real servers:
// a public environment reads and writes its lookup service with the
// secret the broker adds; a private environment reads the same public
// cluster but its write is refused by the exfiltration rule; a function
// without connections, and a UDF, have no way out; every decision is
// audited, and the secret is nowhere but at the service.
func TestConnectorEgress(t *testing.T) {
	svc := startLookupService(t)
	dir := t.TempDir()
	const secret = "Bearer e2e-lookup-secret-7f3a9c"
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "lookup.token"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := freeAddr(t)
	policy := fmt.Sprintf(`org: acme
environments:
  - {name: analytics, visibility: public}
  - {name: payments, visibility: private}
networks:
  - {name: payments-link, listen: "%[1]s", environments: [payments]}
pools:
  - {name: default, environment: analytics}
  - {name: default, environment: payments}
connections:
  - name: lookup
    environment: analytics
    destination: http://%[2]s
    methods: [GET, HEAD]
    cluster: public
    secret_file: secrets/lookup.token
    secret_header: Authorization
  - name: sink
    environment: analytics
    destination: http://%[2]s
    methods: [GET, POST]
    cluster: public
  - name: lookup
    environment: payments
    destination: http://%[2]s
    methods: [GET]
    cluster: public
`, link, svc.addr)
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serveWith(t, filepath.Join(t.TempDir(), "data"), "", "--policy", file)
	on := func(env string) []string {
		if env == "payments" {
			return []string{"--addr", link}
		}
		return nil
	}
	cli := func(env, stdin string, args ...string) (string, string, int) {
		return s.cli(stdin, append(on(env), args...)...)
	}
	must := func(env, stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := cli(env, stdin, args...)
		if code != 0 {
			t.Fatalf("udfhost %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	artifact := func(env, kind string) string {
		var art struct{ ID string }
		json.Unmarshal([]byte(must(env, "", "artifact", "upload", "--env", env, "--kind", kind, wasm["go-enrich"])), &art)
		return art.ID
	}
	create := func(env, name, art, export, sig string, conns ...string) {
		t.Helper()
		args := []string{"function", "create", "--env", env, "--name", name, "--artifact", art, "--export", export, "--signature", sig}
		for _, c := range conns {
			args = append(args, "--connection", c)
		}
		must(env, "", args...)
	}
	pub, priv := artifact("analytics", "connector"), artifact("payments", "connector")
	create("analytics", "lookup", pub, "lookup", "(VARCHAR) -> VARCHAR", "lookup")
	create("analytics", "publish", pub, "publish", "(VARCHAR, VARCHAR) -> VARCHAR", "sink")
	create("analytics", "offline", pub, "lookup", "(VARCHAR) -> VARCHAR")
	create("payments", "lookup", priv, "lookup", "(VARCHAR) -> VARCHAR", "lookup")
	create("payments", "publish", priv, "publish", "(VARCHAR, VARCHAR) -> VARCHAR", "lookup")

	invoke := func(env, fn, in string) string {
		t.Helper()
		return must(env, in, "invoke", "--env", env, "--function", fn)
	}
	if got := invoke("analytics", "lookup", "[\"k1\"]\n[\"missing\"]\n"); got != "\"value-of-k1\"\n{\"error\":\"lookup \\\"missing\\\": status 404\"}\n" {
		t.Errorf("analytics lookup = %q", got)
	}
	if got := invoke("analytics", "publish", "[\"k2\", \"v2\"]\n"); got != "\"201\"\n" {
		t.Errorf("analytics publish = %q", got)
	}
	if got := invoke("payments", "lookup", "[\"k3\"]\n"); got != "\"value-of-k3\"\n" {
		t.Errorf("payments lookup (a private environment reads a public cluster) = %q", got)
	}
	before := len(svc.requests())
	got := invoke("payments", "publish", "[\"k4\", \"leak\"]\n")
	if !strings.Contains(got, "never write to it") || !strings.Contains(got, "error") {
		t.Errorf("payments publish (a private environment writes a public cluster) = %q, want a row error naming the rule", got)
	}
	if got := invoke("analytics", "offline", "[\"k5\"]\n"); !strings.Contains(got, "this function has no connections") {
		t.Errorf("a function without connections = %q", got)
	}
	if n := len(svc.requests()); n != before {
		t.Errorf("the service saw %d more requests after the refused ones: %+v", n-before, svc.requests()[before:])
	}

	// What the service saw: the grant's Host, the secret only on the
	// connection that has it, the write's body.
	for _, r := range svc.requests() {
		if r.Host != svc.addr {
			t.Errorf("service saw Host %q, want the grant's %q", r.Host, svc.addr)
		}
		wantAuth := ""
		if r.Method == http.MethodGet && (r.Path == "/k1" || r.Path == "/missing") {
			wantAuth = secret
		}
		if r.Auth != wantAuth {
			t.Errorf("%s %s carried Authorization %q, want %q", r.Method, r.Path, r.Auth, wantAuth)
		}
		if r.Path == "/k4" {
			t.Errorf("the refused write reached the service: %+v", r)
		}
	}

	// A UDF may not be bound to connections.
	var udf struct{ ID string }
	json.Unmarshal([]byte(must("analytics", "", "artifact", "upload", "--env", "analytics", wasm["go-upper"])), &udf)
	if _, errOut, code := cli("analytics", "", "function", "create", "--env", "analytics", "--name", "u", "--artifact", udf.ID,
		"--export", "upper", "--signature", "(VARCHAR) -> VARCHAR", "--connection", "lookup"); code == 0 || !strings.Contains(errOut, "only a connector artifact may use connections") {
		t.Errorf("a UDF bound to a connection: exit %d: %s", code, errOut)
	}
	// A connection of another environment, or none of that name.
	if _, errOut, code := cli("analytics", "", "function", "create", "--env", "analytics", "--name", "x", "--artifact", pub,
		"--export", "lookup", "--signature", "(VARCHAR) -> VARCHAR", "--connection", "nope"); code == 0 || !strings.Contains(errOut, `has no connection "nope"`) {
		t.Errorf("an unknown connection: exit %d: %s", code, errOut)
	}

	// Every request is audited: allowed ones with their status, the
	// refused write as a denial naming the rule.
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(s.data, "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var allowed, denied int
	for _, line := range strings.Split(string(log), "\n") {
		if !strings.Contains(line, `"type":"egress.request"`) {
			continue
		}
		var rec struct {
			Pod, Resource, Decision, Reason string
			Details                         map[string]string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Pod == "" || rec.Details["function"] == "" {
			t.Errorf("egress record without pod or function: %s", line)
		}
		switch rec.Decision {
		case "allow":
			allowed++
		case "deny":
			denied++
			exfil := strings.Contains(rec.Reason, "never write to it") && rec.Resource == "connection/payments/lookup"
			offline := rec.Reason == "this function has no connections" && rec.Details["function"] == "analytics/offline"
			if !exfil && !offline {
				t.Errorf("denial = %s", line)
			}
		}
	}
	if allowed < 4 || denied != 2 {
		t.Errorf("egress records: %d allowed, %d denied; want at least 4 and exactly 2 (the write, the function without connections)", allowed, denied)
	}
	for name, text := range map[string]string{"audit log": string(log), "server output": s.logs()} {
		if strings.Contains(text, "e2e-lookup-secret") {
			t.Errorf("the secret is in the %s", name)
		}
	}
}
