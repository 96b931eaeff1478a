package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// auditPolicy is the tenants' policy without treasury, so that
// payments-link reaches every environment (analytics is public, payments
// is its own) and an organisation-wide read is possible on it, plus
// anaaudit, an auditor of analytics only.
func auditPolicy() *policies.Policy {
	p := tenantPolicy(policies.Private)
	delete(p.Environments, "treasury")
	delete(p.Pools, "treasury/default")
	delete(p.Networks, netTreasury)
	sum := sha256.Sum256([]byte(tenantToken("anaaudit")))
	p.Principals = append(p.Principals, &policies.Principal{Name: "anaaudit", TokenSHA256: sum[:], Roles: map[string]policies.Role{"analytics": policies.RoleAuditor}})
	return p
}

// startAuditTenants is startTenants with auditPolicy.
func startAuditTenants(t *testing.T) *tenants {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (jailed workers, cgroups)")
	}
	needsFullAuthorize(t)
	s := New(Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		Policy: auditPolicy(), Logger: slog.New(slog.DiscardHandler), SummaryInterval: time.Hour,
		AuditCheckpointInterval: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start server: %v", err)
	}
	ts := &tenants{t: t, s: s, conns: map[string]*grpc.ClientConn{}, ctx: ctx, wasm: addK(t, 1)}
	t.Cleanup(func() { ts.stop() })
	for _, n := range []string{netPublic, netPayments} {
		conn, err := grpc.NewClient(s.NetworkAddr(n), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ts.conns[n] = conn
	}
	return ts
}

// readAuditRPC reads the audit log over ReadAudit as who on network.
func (ts *tenants) readAuditRPC(network, who string, req *udfhostv1.ReadAuditRequest) ([]audit.Record, error) {
	ts.t.Helper()
	stream, err := udfhostv1.NewAuditServiceClient(ts.conns[network]).ReadAudit(ts.as(who), req)
	if err != nil {
		return nil, err
	}
	var got []audit.Record
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		tm, err := time.Parse(time.RFC3339Nano, m.Time)
		if err != nil {
			ts.t.Fatalf("record %d: time %q: %v", m.Seq, m.Time, err)
		}
		got = append(got, audit.Record{
			Seq: m.Seq, Time: tm, Type: m.Type, Actor: m.Actor, SPIFFEID: m.SpiffeId, Network: m.Network, Pod: m.Pod,
			Resource: m.Resource, Decision: m.Decision, Reason: m.Reason, RequestID: m.RequestId, Host: m.Host, Details: m.Details,
			Prev: m.Prev, Hash: m.Hash,
		})
	}
}

// wantChain checks that recs are the log's records from its first on,
// each sealed by its hash and chained onto the one before.
func wantChain(t *testing.T, recs []audit.Record) {
	t.Helper()
	prev := audit.GenesisHash
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d, want %d", i, r.Seq, i+1)
		}
		if !r.HashOK() {
			t.Errorf("record %d: hash does not verify", r.Seq)
		}
		if r.Prev != prev {
			t.Errorf("record %d: prev %s, want %s", r.Seq, r.Prev, prev)
		}
		prev = r.Hash
	}
}

func envsOf(recs []audit.Record) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[recordEnv(r)]++
	}
	return m
}

func TestReadAudit(t *testing.T) {
	ts := startAuditTenants(t)
	ts.fixtures()
	if err := ts.invoke(netPublic, "ana", "payments", "charge"); err == nil {
		t.Fatal("ana invoked payments from the public network")
	}

	t.Run("org-wide readers read everything", func(t *testing.T) {
		for _, who := range []string{"admin", "auditor"} {
			recs, err := ts.readAuditRPC(netPayments, who, &udfhostv1.ReadAuditRequest{Limit: 10000})
			if err != nil {
				t.Fatalf("%s: %v", who, err)
			}
			wantChain(t, recs)
			envs := envsOf(recs)
			if envs[""] == 0 || envs["analytics"] == 0 || envs["payments"] == 0 {
				t.Errorf("%s read records of %v, want org-wide, analytics and payments ones", who, envs)
			}
			if recs[0].Type != audit.TypeServerStarted {
				t.Errorf("%s: first record is %s, want %s", who, recs[0].Type, audit.TypeServerStarted)
			}
		}
	})

	t.Run("the public network reads no private environment", func(t *testing.T) {
		recs, err := ts.readAuditRPC(netPublic, "admin", &udfhostv1.ReadAuditRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if envs := envsOf(recs); len(envs) != 1 || envs["analytics"] == 0 {
			t.Errorf("admin on the public network read records of %v, want analytics only", envs)
		}
	})

	t.Run("an auditor of analytics reads analytics only", func(t *testing.T) {
		for _, env := range []string{"", "analytics"} {
			for _, network := range []string{netPublic, netPayments} {
				recs, err := ts.readAuditRPC(network, "anaaudit", &udfhostv1.ReadAuditRequest{Env: env})
				if err != nil {
					t.Fatalf("env %q on %s: %v", env, network, err)
				}
				if len(recs) == 0 {
					t.Errorf("env %q on %s: no records", env, network)
				}
				for _, r := range recs {
					if recordEnv(r) != "analytics" || strings.Contains(r.Resource, "payments") || strings.Contains(r.Details["env"], "payments") {
						t.Errorf("env %q on %s: record %d (%s %s %v) is not analytics'", env, network, r.Seq, r.Type, r.Resource, r.Details)
					}
				}
			}
		}
		_, err := ts.readAuditRPC(netPayments, "anaaudit", &udfhostv1.ReadAuditRequest{Env: "payments"})
		ts.wantDenied(err, codes.NotFound, "anaaudit", netPayments, "env/payments")
		_, err = ts.readAuditRPC(netPublic, "anaaudit", &udfhostv1.ReadAuditRequest{Env: "payments"})
		ts.wantDenied(err, codes.PermissionDenied, "anaaudit", netPublic, "env/payments")
	})

	t.Run("developers and invokers are refused", func(t *testing.T) {
		_, err := ts.readAuditRPC(netPublic, "ana", &udfhostv1.ReadAuditRequest{})
		ts.wantDenied(err, codes.PermissionDenied, "ana", netPublic, "env/")
		_, err = ts.readAuditRPC(netPublic, "ana", &udfhostv1.ReadAuditRequest{Env: "analytics"})
		ts.wantDenied(err, codes.PermissionDenied, "ana", netPublic, "env/analytics")
		_, err = ts.readAuditRPC(netPayments, "tm", &udfhostv1.ReadAuditRequest{Env: "payments"})
		ts.wantDenied(err, codes.PermissionDenied, "tm", netPayments, "env/payments")
		_, err = ts.readAuditRPC(netPayments, "inv", &udfhostv1.ReadAuditRequest{})
		ts.wantDenied(err, codes.PermissionDenied, "inv", netPayments, "env/")
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "inv") || !strings.Contains(msg, "audit.read") {
			t.Errorf("refusal %q does not name the principal and the action", msg)
		}
	})

	t.Run("since_seq, limit and type", func(t *testing.T) {
		recs, err := ts.readAuditRPC(netPayments, "admin", &udfhostv1.ReadAuditRequest{SinceSeq: 3, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || recs[0].Seq != 3 || recs[1].Seq != 4 || recs[1].Prev != recs[0].Hash || !recs[0].HashOK() || !recs[1].HashOK() {
			t.Errorf("since 3 limit 2: got %d records %+v, want seqs 3 and 4 chained", len(recs), recs)
		}
		recs, err = ts.readAuditRPC(netPayments, "admin", &udfhostv1.ReadAuditRequest{Type: audit.TypeFunctionCreated})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 {
			t.Errorf("type %s: %d records, want 2", audit.TypeFunctionCreated, len(recs))
		}
		for _, r := range recs {
			if r.Type != audit.TypeFunctionCreated {
				t.Errorf("type filter returned a %s", r.Type)
			}
		}
	})
}

func TestRecordEnv(t *testing.T) {
	tests := []struct {
		r    audit.Record
		want string
	}{
		{audit.Record{Type: audit.TypeArtifactCommitted, Resource: "artifact/art-1", Details: map[string]string{"env": "analytics"}}, "analytics"},
		{audit.Record{Type: audit.TypeAccessDenied, Resource: "env/", Details: map[string]string{"env": ""}}, ""},
		{audit.Record{Type: audit.TypeAccessDenied, Resource: "env/payments"}, "payments"},
		{audit.Record{Type: audit.TypeFunctionCreated, Resource: "function/payments/charge"}, "payments"},
		{audit.Record{Type: audit.TypeArtifactQuarantined, Resource: "artifact/art-1", Details: map[string]string{"function": "payments/charge"}}, ""},
		{audit.Record{Type: audit.TypeServerStarted}, ""},
		{audit.Record{Type: audit.TypePolicyReloaded, Resource: "policy/p.yaml"}, ""},
	}
	for _, tt := range tests {
		if got := recordEnv(tt.r); got != tt.want {
			t.Errorf("recordEnv(%s %s %v) = %q, want %q", tt.r.Type, tt.r.Resource, tt.r.Details, got, tt.want)
		}
	}
}
