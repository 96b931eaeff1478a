package sectest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/udfhost/udfhost/policies"
)

// The egress cases run hostile connectors against a real HTTP server the
// suite starts on a loopback address, which the server's policy grants
// explicitly. WritePolicy writes that policy before the server starts
// (`security-test --write-policy DIR`); Config.Policy points the suite at
// it, and the suite learns the addresses from the file itself.

// The names the suite's policy gives its egress grants.
const (
	egressPublicEnv = "default"      // the embedded default's public environment
	egressSealedEnv = "sealed"       // a private environment
	egressNetwork   = "sectest-link" // the private network serving it
	egressPool      = "egress"       // in both environments
	connGet         = "st_get"       // default: GET, HEAD, with a secret
	connOther       = "st_other"     // default: never bound to any case's function
	connRead        = "st_read"      // sealed: GET, HEAD of the public cluster
	egressHost      = "127.0.0.7"    // the suite's HTTP server (loopback, never anything else)
	egressBigBytes  = 5 << 20        // what /big/ answers: over the broker's 4 MiB
)

// WritePolicy writes, into dir, the policy a server under the suite runs
// with (policy.yaml, returned) and the secret of its connection: the
// embedded default's environment and pool unchanged, plus a private
// environment on a private network, an egress pool in each, and
// connections to the suite's HTTP server on egressHost at a free port.
func WritePolicy(dir string) (string, error) {
	httpAddr, err := freePort(egressHost)
	if err != nil {
		return "", err
	}
	// The private network's listener on the same address: a loopback
	// address other than 127.0.0.1 keeps the free port from being taken
	// by another program's port-0 listener before serve binds it.
	linkAddr, err := freePort(egressHost)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		return "", fmt.Errorf("write the suite's policy: %w", err)
	}
	raw := make([]byte, 16)
	rand.Read(raw)
	secret := "Bearer sectest-secret-" + hex.EncodeToString(raw)
	if err := os.WriteFile(filepath.Join(dir, "secrets", "sectest.token"), []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write the suite's policy: %w", err)
	}
	policy := fmt.Sprintf(`# The security suite's policy (udfhost security-test --write-policy): the
# embedded default's environment and pool, plus what the egress cases need.
org: default
environments:
  - {name: %[3]s, visibility: public}
  - {name: %[4]s, visibility: private}
networks:
  - {name: %[5]s, listen: "%[2]s", environments: [%[4]s]}
pools:
  - {name: default, environment: %[3]s}
  # Past the broker's 5 s timeout; room for a flood past its per-pod cap of 8.
  - {name: %[6]s, environment: %[3]s, batch_deadline: 10s, instances_per_worker: 16, memory_pages: 512, quarantine_after: 5}
  - {name: %[6]s, environment: %[4]s, batch_deadline: 10s, memory_pages: 512, quarantine_after: 5}
connections:
  - name: %[7]s
    environment: %[3]s
    destination: "http://%[1]s"
    methods: [GET, HEAD]
    cluster: public
    secret_file: secrets/sectest.token
    secret_header: Authorization
  - {name: %[8]s, environment: %[3]s, destination: "http://%[1]s", methods: [GET], cluster: public}
  - {name: %[9]s, environment: %[4]s, destination: "http://%[1]s", methods: [GET, HEAD], cluster: public}
`, httpAddr, linkAddr, egressPublicEnv, egressSealedEnv, egressNetwork, egressPool, connGet, connOther, connRead)
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		return "", fmt.Errorf("write the suite's policy: %w", err)
	}
	return path, nil
}

// freePort returns host:port with a port free on host right now.
func freePort(host string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// egressSetup is what the egress cases share: the suite's HTTP server,
// what it saw, and a connection to the private environment's network.
type egressSetup struct {
	addr   string // the HTTP server, as the policy grants it
	secret string // the connection's secret, which no guest may see
	srv    *http.Server
	sealed api // the private network's services
	conn   *grpc.ClientConn

	mu   sync.Mutex
	seen []seenRequest
}

// seenRequest is one request the suite's HTTP server received.
type seenRequest struct {
	Method, URI, Host, Auth string
	Header                  []string // names
	start, end              time.Time
}

func (s seenRequest) String() string {
	return fmt.Sprintf("%s %q Host %q", s.Method, s.URI, s.Host)
}

// errNoEgress is what an egress case reports without the suite's policy.
var errNoEgress = errors.New("the egress cases need the server to run the suite's policy: start it with --policy FILE from `udfhost security-test --write-policy DIR` and pass the same --policy FILE here")

// startEgress reads the suite's policy at file and starts the HTTP server
// its connections grant.
func startEgress(file, token string) (*egressSetup, error) {
	pol, err := policies.Load(file)
	if err != nil {
		return nil, fmt.Errorf("the suite's policy: %w", err)
	}
	get, err := pol.Connection(egressPublicEnv, connGet)
	if err != nil {
		return nil, fmt.Errorf("the suite's policy %s (not written by --write-policy?): %w", file, err)
	}
	link, ok := pol.Networks[egressNetwork]
	if !ok {
		return nil, fmt.Errorf("the suite's policy %s has no network %q (not written by --write-policy?)", file, egressNetwork)
	}
	eg := &egressSetup{addr: net.JoinHostPort(get.Host, fmt.Sprint(get.Port)), secret: get.Secret.Reveal()}
	if !strings.HasPrefix(eg.addr, egressHost+":") {
		return nil, fmt.Errorf("the suite's policy grants %s; the suite serves only %s", eg.addr, egressHost)
	}
	ln, err := net.Listen("tcp", eg.addr)
	if err != nil {
		return nil, fmt.Errorf("the suite's HTTP server: %w", err)
	}
	eg.srv = &http.Server{Handler: http.HandlerFunc(eg.serve), ReadHeaderTimeout: 10 * time.Second}
	go eg.srv.Serve(ln)
	if eg.conn, err = dial(link.Listen, token, nil); err != nil {
		eg.srv.Close()
		return nil, err
	}
	eg.sealed = newAPI(eg.conn)
	return eg, nil
}

func (eg *egressSetup) close() {
	eg.srv.Close()
	eg.conn.Close()
}

// serve records the request and answers by path: /big/ more than the
// broker takes, /slow/ not before the broker gives up, /hold/ after 3 s,
// anything else "ok".
func (eg *egressSetup) serve(w http.ResponseWriter, r *http.Request) {
	sr := seenRequest{Method: r.Method, URI: r.RequestURI, Host: r.Host, Auth: r.Header.Get("Authorization"), start: time.Now()}
	for k := range r.Header {
		sr.Header = append(sr.Header, k)
	}
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	defer func() {
		sr.end = time.Now()
		eg.mu.Lock()
		eg.seen = append(eg.seen, sr)
		eg.mu.Unlock()
	}()
	wait := func(d time.Duration) {
		select {
		case <-r.Context().Done():
		case <-time.After(d):
		}
	}
	switch {
	case strings.Contains(r.URL.Path, "/big/"):
		w.Header().Set("Content-Length", fmt.Sprint(egressBigBytes))
		chunk := make([]byte, 64<<10)
		for n := 0; n < egressBigBytes; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	case strings.Contains(r.URL.Path, "/slow/"):
		wait(8 * time.Second)
		io.WriteString(w, "late")
	case strings.Contains(r.URL.Path, "/hold/"):
		wait(3 * time.Second)
		io.WriteString(w, "ok")
	default:
		io.WriteString(w, "ok")
	}
}

// requests returns what the server saw whose request URI contains mark.
func (eg *egressSetup) requests(mark string) []seenRequest {
	eg.mu.Lock()
	defer eg.mu.Unlock()
	var out []seenRequest
	for _, s := range eg.seen {
		if strings.Contains(s.URI, mark) {
			out = append(out, s)
		}
	}
	return out
}

// maxInFlight is the most of reqs the server was handling at once.
func maxInFlight(reqs []seenRequest) int {
	most := 0
	for _, a := range reqs {
		n := 0
		for _, b := range reqs {
			if !b.start.After(a.start) && b.end.After(a.start) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}
