package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/atomicfile"
	"github.com/udfhost/udfhost/policies"
)

// loadOrCreateToken returns the admin bearer token kept in path (mode 0600),
// creating it on first start.
func loadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		fi, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("admin token %s: %w", path, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("admin token %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 32 {
			return "", fmt.Errorf("admin token %s is shorter than 32 characters", path)
		}
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("admin token %s: %w", path, err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	tok := hex.EncodeToString(raw)
	if err := atomicfile.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("create admin token: %w", err)
	}
	return tok, nil
}

// dataDirAdmin is the principal of the admin token in the data directory,
// which a policy without principals (the embedded default) admits: admin
// in every environment.
func dataDirAdmin() *policies.Principal {
	return &policies.Principal{Name: "admin", Roles: map[string]policies.Role{policies.AllEnvironments: policies.RoleAdmin}}
}

// caller is who is calling, from where, as the interceptors authenticated
// it, and what its RPC does (rpcActions).
type caller struct {
	// principal is nil for the methods anyone may call.
	principal *policies.Principal
	name      string // the principal's
	spiffeID  string // the SPIFFE ID that authenticated it, if mTLS did
	network   string // the network the call arrived on
	action    policies.Action
}

type callerKey struct{}

// callerOf returns the caller of the call in ctx; the zero caller outside
// an authenticated call.
func callerOf(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// stamp returns e with the caller as its actor.
func (c caller) stamp(e audit.Event) audit.Event {
	e.Actor, e.SPIFFEID, e.Network = c.name, c.spiffeID, c.network
	return e
}

// callerAudit is the artifact store's audit log: a record the store
// writes for a call, naming the caller as its actor, gets the caller's
// SPIFFE ID and network too.
type callerAudit struct{ log *callLog }

func (a callerAudit) Record(ctx context.Context, e audit.Event) error {
	if c := callerOf(ctx); c.name != "" && e.Actor == c.name && e.Network == "" {
		e = c.stamp(e)
	}
	return a.log.Record(ctx, e)
}

// unauthenticated lists the services anyone may call: health probes and
// reflection (it reveals the API shape, which is public anyway).
func unauthenticated(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

// expectedAuth is the header form every refusal shows the caller.
const expectedAuth = "authorization: Bearer <token>"

// authFailure is why a call was not authenticated: reason is short and
// stable (audit records are grouped by it and operators grep for it), hint
// tells the caller what to send instead. Neither ever contains the token.
type authFailure struct {
	reason, hint string
}

func (f *authFailure) status() error {
	if f.hint == "" {
		return status.Error(codes.Unauthenticated, f.reason)
	}
	return status.Error(codes.Unauthenticated, f.reason+"; "+f.hint)
}

// Reasons for refusing a call. The first two are part of the security
// suite's expectations (test/hostile/manifest.json).
const (
	reasonMissing     = "missing bearer token"
	reasonInvalid     = "invalid bearer token"
	reasonNoScheme    = "authorization header has no scheme"
	reasonWrongScheme = "authorization scheme is not Bearer"
	reasonManyHeaders = "more than one authorization header"
)

// bearerToken parses an authorization header value: the scheme is
// case-insensitive (RFC 7235 section 2.1), separated from the token by
// spaces or tabs, and whitespace around the value is ignored (a token
// pasted from a file keeps its newline). A value with no scheme is
// refused, not taken for a raw token: accepting both would make a
// misconfigured client work by accident with one server and fail with the
// next.
func bearerToken(v string) (string, *authFailure) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", &authFailure{reason: reasonMissing, hint: "send " + expectedAuth}
	}
	i := strings.IndexAny(v, " \t")
	if i < 0 && strings.EqualFold(v, "Bearer") {
		return "", &authFailure{reason: reasonMissing, hint: "send " + expectedAuth}
	}
	if i < 0 {
		return "", &authFailure{reason: reasonNoScheme, hint: "send " + expectedAuth}
	}
	scheme, tok := v[:i], strings.TrimSpace(v[i+1:])
	if !strings.EqualFold(scheme, "Bearer") {
		return "", &authFailure{reason: reasonWrongScheme, hint: "send " + expectedAuth}
	}
	if tok == "" {
		return "", &authFailure{reason: reasonMissing, hint: "send " + expectedAuth}
	}
	return tok, nil
}

// checkToken authenticates the metadata of a call under pol: its bearer
// token is the data directory's admin token (when pol names no
// principals) or a principal's (Policy.Authenticate), compared in
// constant time. It returns the principal or why the call is refused.
func (s *Server) checkToken(pol *policies.Policy, md metadata.MD) (*policies.Principal, *authFailure) {
	v := md.Get("authorization")
	switch len(v) {
	case 0:
		return nil, &authFailure{reason: reasonMissing, hint: "send " + expectedAuth}
	case 1:
	default:
		return nil, &authFailure{reason: reasonManyHeaders, hint: "send one " + expectedAuth}
	}
	tok, fail := bearerToken(v[0])
	if fail != nil {
		return nil, fail
	}
	if len(pol.Principals) == 0 && s.token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) == 1 {
		return s.admin, nil
	}
	p, err := pol.Authenticate(tok)
	if err != nil {
		return nil, &authFailure{reason: reasonInvalid}
	}
	return p, nil
}

// tapAuth authenticates a call from its headers, in the admission tap,
// before any of its message is read: an unauthenticated caller cannot make
// the server buffer or decode a request. It runs on the connection's
// transport goroutine; a refusal costs a map update, and an audit write
// only for the first refusal of a source in an interval (authFailures).
func (s *Server) tapAuth(ctx context.Context, info *tap.Info) error {
	if unauthenticated(info.FullMethodName) {
		return nil
	}
	if _, _, fail := s.identify(ctx, s.policy.Load(), info.Header); fail != nil {
		s.authFails.note(ctx, info.FullMethodName, fail.reason)
		return fail.status()
	}
	return nil
}

// authenticate checks the call again in the interceptors (the tap already
// refused what fails here; this is defence in depth), and puts the
// caller in the handler's context: its principal, the network the call
// arrived on and the action of its RPC. An RPC with no action in
// rpcActions is refused: a method added without one must not run
// unchecked.
func (s *Server) authenticate(ctx context.Context, method string) (context.Context, error) {
	c := caller{network: networkOf(ctx)}
	if unauthenticated(method) {
		return context.WithValue(ctx, callerKey{}, c), nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	p, spiffeID, fail := s.identify(ctx, s.policyOf(ctx), md)
	if fail != nil {
		s.authFails.note(ctx, method, fail.reason)
		return nil, fail.status()
	}
	// spiffeID is "" when a bearer token authenticated it.
	c.principal, c.name, c.spiffeID = p, p.Name, spiffeID
	if n := noteOf(ctx); n != nil {
		n.principal = p.Name // for the call's log line
	}
	act, ok := rpcActions[method]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s has no access rule; it is refused to everyone", method)
	}
	c.action = act
	return context.WithValue(ctx, callerKey{}, c), nil
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	resp, err := h(ctx, req)
	return resp, toStatus(err)
}

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return toStatus(h(srv, &authedStream{ServerStream: ss, ctx: ctx}))
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }
