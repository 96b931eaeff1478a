package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// TestEveryRPCHasAnAction: every method the server registers is one anyone
// may call (health, reflection) or has exactly one action in rpcActions,
// and rpcActions names no method the server does not have.
func TestEveryRPCHasAnAction(t *testing.T) {
	g := grpc.NewServer()
	udfhostv1.RegisterArtifactServiceServer(g, &artifactService{})
	udfhostv1.RegisterFunctionServiceServer(g, &functionService{})
	udfhostv1.RegisterInvokeServiceServer(g, &invokeService{})
	udfhostv1.RegisterIdentityServiceServer(g, &identityService{})
	udfhostv1.RegisterAuditServiceServer(g, &auditService{})
	healthpb.RegisterHealthServer(g, nil)
	reflection.Register(g)
	served := map[string]bool{}
	for svc, info := range g.GetServiceInfo() {
		for _, m := range info.Methods {
			method := "/" + svc + "/" + m.Name
			served[method] = true
			if _, ok := rpcActions[method]; !ok && !unauthenticated(method) {
				t.Errorf("%s has no action in rpcActions", method)
			}
		}
	}
	for method := range rpcActions {
		if !served[method] {
			t.Errorf("rpcActions names %s, which the server does not serve", method)
		}
	}
}

// TestAuthenticateCaller: the caller in the context is the principal of
// the token, on the network of the connection's listener, with its RPC's
// action; an RPC with no action is refused even to an admin.
func TestAuthenticateCaller(t *testing.T) {
	s := New(Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.token = testToken
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tagged := networkListener{Listener: ln, network: "payments-link"}
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	conn, err := tagged.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.LocalAddr().String() != ln.Addr().String() {
		t.Errorf("tagged local address prints as %s, want %s", conn.LocalAddr(), ln.Addr())
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: conn.RemoteAddr(), LocalAddr: conn.LocalAddr()})
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+testToken))

	got, err := s.authenticate(ctx, udfhostv1.InvokeService_Invoke_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	c := callerOf(got)
	if c.name != "admin" || c.network != "payments-link" || c.action != policies.Invoke || c.spiffeID != "" || c.principal.Roles["*"] != policies.RoleAdmin {
		t.Errorf("caller %+v", c)
	}
	if _, err := s.authenticate(ctx, "/udfhost.v1.Secrets/Leak"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("an RPC without an action: %v, want PERMISSION_DENIED", err)
	}
	// No listener tagged it: the public network, which reaches nothing
	// private.
	if n := networkOf(context.Background()); n != policies.PublicNetwork {
		t.Errorf("untagged call on network %q", n)
	}
	// A policy with principals of its own does not admit the data dir's token.
	pol := policies.Default()
	pol.Principals = []*policies.Principal{{Name: "ops", TokenSHA256: make([]byte, 32)}}
	s2 := New(Config{DataDir: t.TempDir(), Policy: pol, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s2.token = testToken
	if p, fail := s2.checkToken(pol, metadata.Pairs("authorization", "Bearer "+testToken)); fail == nil || fail.reason != reasonInvalid {
		t.Errorf("data dir token under a policy with principals: %v %v", p, fail)
	}
}

// TestAccessErrors: the policy's errors at the edge.
func TestAccessErrors(t *testing.T) {
	perm := fmt.Errorf("%w: principal %q has role invoker in environment %q; function.create needs developer", policies.ErrPermission, "tm", "payments")
	hidden := &hiddenError{reason: fmt.Errorf("%w: principal ana has no role in payments", policies.ErrHidden), as: missingEnv("payments")}
	tests := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{perm, codes.PermissionDenied, perm.Error()},
		{fmt.Errorf("create function: %w", perm), codes.PermissionDenied, "create function: " + perm.Error()},
		{policies.ErrUnauthenticated, codes.Unauthenticated, "unauthenticated"},
		{hidden, codes.NotFound, `environment "payments" not found`},
		{fmt.Errorf("invoke: %w", hidden), codes.NotFound, `environment "payments" not found`},
		{fmt.Errorf("%w: principal ana has no role in payments", policies.ErrHidden), codes.NotFound, "not found"},
		{fmt.Errorf("%w: environment turned private", errStale), codes.FailedPrecondition, "no longer valid: environment turned private"},
	}
	for _, tc := range tests {
		st := status.Convert(toStatus(tc.err))
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("toStatus(%q) = %s %q, want %s %q", tc.err, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
	if !errors.Is(hidden, policies.ErrNotFound) || errors.Is(hidden, policies.ErrHidden) {
		t.Error("a hiddenError must read as the missing environment's error, never as the reason")
	}
	if _, err := (&policies.Policy{}).Env("payments"); missingEnv("payments").Error() != err.Error() {
		t.Errorf("missingEnv = %v, the policy says %v", missingEnv("payments"), err)
	}
}
