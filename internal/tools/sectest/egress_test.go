package sectest

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udfhost/udfhost/policies"
)

// TestWritePolicyLoads checks that the suite's policy loads and grants
// what the egress cases rely on: connections to the suite's server on
// egressHost only, the secret on st_get, a private environment that may
// only read, and its private network.
func TestWritePolicyLoads(t *testing.T) {
	file, err := WritePolicy(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policies.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ env, name string }{{egressPublicEnv, connGet}, {egressPublicEnv, connOther}, {egressSealedEnv, connRead}} {
		conn, err := pol.Connection(c.env, c.name)
		if err != nil {
			t.Fatal(err)
		}
		if conn.Host != egressHost || conn.Port == 0 {
			t.Errorf("%s/%s grants %s, want %s and a port", c.env, c.name, conn.Destination(), egressHost)
		}
		if slices.ContainsFunc(conn.Methods, func(m string) bool { return !policies.IsRead(m) }) {
			t.Errorf("%s/%s grants %v: the cases need read-only grants", c.env, c.name, conn.Methods)
		}
		if hasSecret := conn.Secret.IsSet(); hasSecret != (c.name == connGet) {
			t.Errorf("%s/%s has a secret: %v", c.env, c.name, hasSecret)
		}
	}
	if env, err := pol.Env(egressSealedEnv); err != nil || env.Visibility != policies.Private {
		t.Errorf("environment %s: %+v, %v; want private", egressSealedEnv, env, err)
	}
	if n := pol.Networks[egressNetwork]; n == nil || n.Listen == "" {
		t.Errorf("network %s: %+v", egressNetwork, n)
	}
	if _, err := pol.Pool(egressPublicEnv, "default"); err != nil {
		t.Error(err)
	}
	p, err := pol.Pool(egressPublicEnv, egressPool)
	if err != nil || p.BatchDeadline <= 5*time.Second || p.InstancesPerWorker <= 8 {
		t.Errorf("pool %s: %+v, %v; want a deadline past the broker's 5 s and more than 8 instances", egressPool, p, err)
	}
}

// TestEgressServer checks what the suite's HTTP server answers and
// records.
func TestEgressServer(t *testing.T) {
	file, err := WritePolicy(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	eg, err := startEgress(file, "")
	if err != nil {
		t.Fatal(err)
	}
	defer eg.close()
	get := func(path string) int {
		resp, err := http.Get("http://" + eg.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		return int(n)
	}
	if n := get("/f/case_a/x"); n != 2 {
		t.Errorf("/f/case_a/x answered %d bytes, want 2", n)
	}
	if n := get("/big/f/case_b"); n != egressBigBytes {
		t.Errorf("/big/ answered %d bytes, want %d", n, egressBigBytes)
	}
	if got := eg.requests("f/case_a"); len(got) != 1 || got[0].Method != "GET" || !strings.HasPrefix(got[0].Host, egressHost) {
		t.Errorf("requests(f/case_a) = %v", got)
	}
}

func TestMaxInFlight(t *testing.T) {
	at := func(s, e int) seenRequest {
		t0 := time.Unix(0, 0)
		return seenRequest{start: t0.Add(time.Duration(s) * time.Second), end: t0.Add(time.Duration(e) * time.Second)}
	}
	for _, tc := range []struct {
		reqs []seenRequest
		want int
	}{
		{nil, 0},
		{[]seenRequest{at(0, 1), at(1, 2), at(2, 3)}, 1},
		{[]seenRequest{at(0, 3), at(1, 2), at(1, 4), at(3, 5)}, 3},
	} {
		if got := maxInFlight(tc.reqs); got != tc.want {
			t.Errorf("maxInFlight(%v) = %d, want %d", tc.reqs, got, tc.want)
		}
	}
}
