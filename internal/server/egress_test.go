package server

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/egress"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/sandbox"
)

// TestEgressRequestRefusals: the refusals the server makes before the
// broker (no connections, a position or a name the binding lacks) are
// each denied, naming what was asked, and audited as egress.request
// denials with the pod and function.
func TestEgressRequestRefusals(t *testing.T) {
	pol, err := policies.Parse("p.yaml", []byte(`org: acme
environments:
  - {name: pub, visibility: public}
connections:
  - {name: lookup, environment: pub, destination: "http://127.0.0.1:18080", methods: [GET], cluster: public}
  - {name: other, environment: pub, destination: "http://127.0.0.1:18081", methods: [GET], cluster: public}
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{audit: &callLog{Log: log}, log: slog.New(slog.DiscardHandler)}
	s.egress = egress.New(egress.Config{Audit: s.audit})
	s.policy.Store(pol)
	is := &invokeService{s: s}
	bound := &functions.Function{Name: "f", Env: "pub", Connections: []string{"lookup"}}
	none := &functions.Function{Name: "g", Env: "pub"}
	id := pods.Identity{Org: "acme", Env: "pub", Pool: "default", Digest: "sha256:" + strings.Repeat("ab", 32)}
	tests := []struct {
		f          *functions.Function
		conn, want string
		resource   string
	}{
		{none, "#0", "this function has no connections", "connection/pub/#0"},
		{none, "lookup", "this function has no connections", "connection/pub/lookup"},
		{bound, "#1", "the function has 1 connection(s); there is no #1", "connection/pub/#1"},
		{bound, "#x", "the function has 1 connection(s); there is no #x", "connection/pub/#x"},
		{bound, "other", `not bound to connection "other"`, "connection/pub/other"},
	}
	for _, tc := range tests {
		_, err := is.egressRequest(context.Background(), tc.f, id, "req-1", sandbox.EgressRequest{Conn: tc.conn, Method: "GET", Path: "/k"})
		if !errors.Is(err, egress.ErrDenied) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s asking for %s: err = %v, want a denial containing %q", tc.f.Name, tc.conn, err, tc.want)
		}
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	if err := audit.Read(path, 0, func(r audit.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(tests) {
		t.Fatalf("%d records, want %d", len(recs), len(tests))
	}
	for i, tc := range tests {
		r := recs[i]
		if r.Type != audit.TypeEgressRequest || r.Decision != audit.Deny || r.Resource != tc.resource ||
			r.Pod != id.SPIFFEID() || r.Details["function"] != "pub/"+tc.f.Name || !strings.Contains(r.Reason, tc.want) {
			t.Errorf("record %d = %+v, want a denial of %s: %q", i, r, tc.resource, tc.want)
		}
	}
}
