package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"golang.org/x/mod/sumdb/note"
	"io"
	"net"
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

// tail reads a Tail stream to its end: the records' lines.
func tail(stream udfhostv1.AuditService_TailClient) ([]*udfhostv1.TailResponse, error) {
	var got []*udfhostv1.TailResponse
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, m)
	}
}

// TestTail: Tail sends each record the caller may read with its line
// byte for byte as the log holds it, filtered by since and type; with
// follow it sends new records as they are written; callers without
// admin or auditor are refused, audited, as by ReadAudit.
func TestTail(t *testing.T) {
	ts := startAuditTenants(t)
	ts.fixtures()
	client := func(network string) udfhostv1.AuditServiceClient {
		return udfhostv1.NewAuditServiceClient(ts.conns[network])
	}
	run := func(network, who string, req *udfhostv1.TailRequest) ([]*udfhostv1.TailResponse, error) {
		stream, err := client(network).Tail(ts.as(who), req)
		if err != nil {
			return nil, err
		}
		return tail(stream)
	}

	t.Run("lines as in the log", func(t *testing.T) {
		upto := ts.s.audit.DurableSeq()
		got, err := run(netPayments, "admin", &udfhostv1.TailRequest{})
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(ts.s.audit.Path())
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(data, []byte("\n"))
		if uint64(len(got)) < upto {
			t.Fatalf("%d records, want at least the %d durable when the call began", len(got), upto)
		}
		for i, m := range got {
			if m.Record.Seq != uint64(i+1) || !bytes.Equal(m.Line, lines[i]) {
				t.Fatalf("record %d: seq %d line\n%s\nwant line %d of the log\n%s", i+1, m.Record.Seq, m.Line, i+1, lines[i])
			}
		}
		wantChain(t, recordsOfTail(t, got))
	})

	t.Run("since and type", func(t *testing.T) {
		got, err := run(netPayments, "auditor", &udfhostv1.TailRequest{SinceSeq: 3, Type: audit.TypeFunctionCreated})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Errorf("%d function.created records, want 2", len(got))
		}
		for _, m := range got {
			if m.Record.Type != audit.TypeFunctionCreated || m.Record.Seq < 3 {
				t.Errorf("got %s record %d", m.Record.Type, m.Record.Seq)
			}
		}
	})

	t.Run("an auditor of analytics tails analytics only", func(t *testing.T) {
		got, err := run(netPublic, "anaaudit", &udfhostv1.TailRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Fatal("no records")
		}
		for _, r := range recordsOfTail(t, got) {
			if recordEnv(r) != "analytics" {
				t.Errorf("record %d (%s %s) is not analytics'", r.Seq, r.Type, r.Resource)
			}
		}
	})

	t.Run("refused without admin or auditor", func(t *testing.T) {
		for _, who := range []string{"ana", "inv"} {
			_, err := run(netPayments, who, &udfhostv1.TailRequest{})
			ts.wantDenied(err, codes.PermissionDenied, who, netPayments, "env/")
			_, err = client(netPayments).GetCheckpoint(ts.as(who), &udfhostv1.GetCheckpointRequest{})
			ts.wantDenied(err, codes.PermissionDenied, who, netPayments, "env/")
			_, err = client(netPayments).Prove(ts.as(who), &udfhostv1.ProveRequest{Proof: &udfhostv1.ProveRequest_Seq{Seq: 1}})
			ts.wantDenied(err, codes.PermissionDenied, who, netPayments, "env/")
		}
	})

	t.Run("checkpoints of this host's log", func(t *testing.T) {
		// The real log's: a signed note its own key verifies, and an
		// inclusion proof of record 1 that checks against it with that
		// key alone.
		v, err := audit.NewVerifier(ts.s.audit.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		// Checkpoints every 50 ms here (startAuditTenants): wait for one
		// that covers record 1.
		var resp *udfhostv1.GetCheckpointResponse
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp, err = client(netPayments).GetCheckpoint(ts.as("auditor"), &udfhostv1.GetCheckpointRequest{})
			if err != nil {
				t.Fatalf("GetCheckpoint: %v", err)
			}
			if lines := bytes.Split(resp.Checkpoint, []byte("\n")); len(lines) > 1 && string(lines[1]) != "0" || time.Now().After(deadline) {
				break
			}
		}
		if _, err := note.Open(resp.Checkpoint, note.VerifierList(v)); err != nil {
			t.Fatalf("GetCheckpoint: %q does not verify with the log's key: %v", resp.Checkpoint, err)
		}
		proof, err := client(netPayments).Prove(ts.as("admin"), &udfhostv1.ProveRequest{Proof: &udfhostv1.ProveRequest_Seq{Seq: 1}})
		if err != nil {
			t.Fatalf("Prove(seq 1): %v", err)
		}
		if _, err := audit.VerifyProof(proof.Proof, v); err != nil {
			t.Fatalf("the proof of record 1 does not verify: %v\n%s", err, proof.Proof)
		}
	})

	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ts.as("auditor"), 30*time.Second)
		defer cancel()
		from := ts.s.audit.DurableSeq() + 1
		stream, err := client(netPayments).Tail(ctx, &udfhostv1.TailRequest{SinceSeq: from, Follow: true, Type: audit.TypeAccessDenied})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			// A refused call is an audited one.
			if err := ts.invoke(netPublic, "ana", "payments", "charge"); err == nil {
				t.Fatal("ana invoked payments from the public network")
			}
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("follow, record %d: %v", i, err)
			}
			if m.Record.Seq < from || m.Record.Type != audit.TypeAccessDenied || m.Record.Actor != "ana" {
				t.Errorf("follow, record %d: %d %s by %s, want ana's access.denied after %d", i, m.Record.Seq, m.Record.Type, m.Record.Actor, from)
			}
			from = m.Record.Seq + 1
		}
		cancel()
		if _, err := tail(stream); status.Code(err) != codes.Canceled {
			t.Errorf("after cancel: %v, want CANCELED", err)
		}
	})
}

func recordsOfTail(t *testing.T, got []*udfhostv1.TailResponse) []audit.Record {
	t.Helper()
	recs := make([]audit.Record, len(got))
	for i, m := range got {
		tm, err := time.Parse(time.RFC3339Nano, m.Record.Time)
		if err != nil {
			t.Fatal(err)
		}
		r := m.Record
		recs[i] = audit.Record{Seq: r.Seq, Time: tm, Type: r.Type, Actor: r.Actor, SPIFFEID: r.SpiffeId, Network: r.Network, Pod: r.Pod,
			Resource: r.Resource, Decision: r.Decision, Reason: r.Reason, RequestID: r.RequestId, Host: r.Host, Details: r.Details,
			Prev: r.Prev, Hash: r.Hash}
	}
	return recs
}

// TestTailEndsAtShutdown: a following Tail does not hold up a shutdown:
// it ends UNAVAILABLE, naming the seq to resume from.
func TestTailEndsAtShutdown(t *testing.T) {
	l := startLive(t, nil)
	stream, err := udfhostv1.NewAuditServiceClient(l.conn).Tail(l.ctx, &udfhostv1.TailRequest{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	next := l.s.audit.DurableSeq() + 1
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.s.Shutdown(ctx) }()
	_, err = tail(stream)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), fmt.Sprintf("since_seq %d", next)) {
		t.Errorf("follow at shutdown: %v, want UNAVAILABLE naming since_seq %d", err, next)
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if ctx.Err() != nil {
		t.Error("shutdown waited for the grace period")
	}
}

// fakeProofs is a log with checkpoints: size records covered.
type fakeProofs struct{ size uint64 }

func (f fakeProofs) LatestCheckpoint() ([]byte, error) {
	return fmt.Appendf(nil, "test-host\n%d\nAAAA\n\n\u2014 test-host sig\n", f.size), nil
}
func (f fakeProofs) InclusionProof(seq uint64) ([]byte, error) {
	return fmt.Appendf(nil, `{"seq":%d}`, seq), nil
}
func (f fakeProofs) ConsistencyProof(old, cur uint64) ([]byte, error) {
	return fmt.Appendf(nil, `{"old":%d,"new":%d}`, old, cur), nil
}

// TestProve: GetCheckpoint and Prove over a log with checkpoints (a fake
// one: the real log's land with audit's checkpoints): who may prove
// which record, and each argument refused with its code.
func TestProve(t *testing.T) {
	ts := startAuditTenants(t)
	ts.fixtures()
	recs := ts.records()
	size := ts.s.audit.DurableSeq()
	as := &auditService{s: ts.s, proofSrc: fakeProofs{size: size - 1}}
	pol := ts.s.policy.Load()
	callAs := func(network, who string) context.Context {
		for _, p := range pol.Principals {
			if p.Name == who {
				return context.WithValue(withPolicy(ts.ctx, pol), callerKey{}, caller{principal: p, name: who, network: network, action: policies.AuditRead})
			}
		}
		t.Fatalf("no principal %s", who)
		return nil
	}
	seqOf := func(env string) uint64 {
		for _, r := range recs {
			if recordEnv(r) == env && r.Seq < size {
				return r.Seq
			}
		}
		t.Fatalf("no record of env %q", env)
		return 0
	}

	cp, err := as.GetCheckpoint(callAs(netPublic, "anaaudit"), &udfhostv1.GetCheckpointRequest{})
	if err != nil || !bytes.HasPrefix(cp.GetCheckpoint(), fmt.Appendf(nil, "test-host\n%d\n", size-1)) {
		t.Errorf("GetCheckpoint: %q, %v", cp.GetCheckpoint(), err)
	}
	seq := func(n uint64) *udfhostv1.ProveRequest {
		return &udfhostv1.ProveRequest{Proof: &udfhostv1.ProveRequest_Seq{Seq: n}}
	}
	consistency := func(old, cur uint64) *udfhostv1.ProveRequest {
		return &udfhostv1.ProveRequest{Proof: &udfhostv1.ProveRequest_Consistency{Consistency: &udfhostv1.ConsistencyRange{OldSize: old, NewSize: cur}}}
	}
	for _, tc := range []struct {
		name, network, who string
		req                *udfhostv1.ProveRequest
		code               codes.Code
		want               string // the proof, or a word of the refusal
	}{
		{"admin, org-wide record", netPayments, "admin", seq(1), codes.OK, `{"seq":1}`},
		{"auditor of analytics, its record", netPublic, "anaaudit", seq(seqOf("analytics")), codes.OK, fmt.Sprintf(`{"seq":%d}`, seqOf("analytics"))},
		{"auditor of analytics, payments' record", netPayments, "anaaudit", seq(seqOf("payments")), codes.NotFound, "not found"},
		{"auditor of analytics, org-wide record", netPublic, "anaaudit", seq(1), codes.PermissionDenied, "anaaudit"},
		{"consistency", netPublic, "anaaudit", consistency(2, size-1), codes.OK, fmt.Sprintf(`{"old":2,"new":%d}`, size-1)},
		{"record 0", netPayments, "admin", seq(0), codes.InvalidArgument, "numbered from 1"},
		{"a record not yet covered", netPayments, "admin", seq(size), codes.FailedPrecondition, "next checkpoint"},
		{"a record not in the log", netPayments, "admin", seq(size + 100), codes.NotFound, "records"},
		{"old size 0", netPayments, "admin", consistency(0, 2), codes.InvalidArgument, "old size"},
		{"old after new", netPayments, "admin", consistency(3, 2), codes.InvalidArgument, "old size"},
		{"past the checkpoint", netPayments, "admin", consistency(2, size), codes.FailedPrecondition, "covers"},
		{"neither", netPayments, "admin", &udfhostv1.ProveRequest{}, codes.InvalidArgument, "seq or consistency"},
	} {
		resp, err := as.Prove(callAs(tc.network, tc.who), tc.req)
		st := status.Convert(toStatus(err))
		switch {
		case st.Code() != tc.code:
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		case tc.code == codes.OK && string(resp.Proof) != tc.want:
			t.Errorf("%s: proof %s, want %s", tc.name, resp.Proof, tc.want)
		case tc.code != codes.OK && !strings.Contains(st.Message(), tc.want):
			t.Errorf("%s: %q does not say %q", tc.name, st.Message(), tc.want)
		}
	}
	if !ts.deniedRecord("anaaudit", netPublic, "env/") {
		t.Error("the refused proof of an org-wide record is not audited")
	}

	// Over gRPC, through the server's edge: an auditor of analytics gets
	// the checkpoint and a proof of its record; a developer neither.
	g := grpc.NewServer(ts.s.grpcOptions(newAdmission(pol.Edge))...)
	udfhostv1.RegisterAuditServiceServer(g, as)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(networkListener{Listener: ln, network: netPublic})
	defer g.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := udfhostv1.NewAuditServiceClient(conn)
	if cp, err := client.GetCheckpoint(ts.as("anaaudit"), &udfhostv1.GetCheckpointRequest{}); err != nil || len(cp.Checkpoint) == 0 {
		t.Errorf("GetCheckpoint over gRPC as anaaudit: %v", err)
	}
	if p, err := client.Prove(ts.as("anaaudit"), seq(seqOf("analytics"))); err != nil || !bytes.Contains(p.GetProof(), []byte(`"seq"`)) {
		t.Errorf("Prove over gRPC as anaaudit: %q, %v", p.GetProof(), err)
	}
	if _, err := client.GetCheckpoint(ts.as("ana"), &udfhostv1.GetCheckpointRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetCheckpoint over gRPC as ana: %v, want PERMISSION_DENIED", err)
	}
	if _, err := client.Prove(ts.as("ana"), seq(seqOf("analytics"))); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Prove over gRPC as ana: %v, want PERMISSION_DENIED", err)
	}

	// Without checkpoints: UNIMPLEMENTED, saying so.
	bare := &auditService{s: ts.s}
	if _, ok := any(ts.s.audit.Log).(proofSource); !ok {
		_, err := bare.Prove(callAs(netPayments, "admin"), seq(1))
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "keeps no checkpoints") {
			t.Errorf("Prove without checkpoints: %v", err)
		}
	}
}
