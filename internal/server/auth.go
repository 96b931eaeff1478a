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
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/atomicfile"
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

type principalKey struct{}

// principal returns who is calling, as authenticated by the interceptors.
func principal(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

// unauthenticated lists the services anyone may call: health probes and
// reflection (it reveals the API shape, which is public anyway).
func unauthenticated(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

// authenticate checks the bearer token in constant time and audits every
// failure. The token itself is never logged.
func (s *Server) authenticate(ctx context.Context, method string) (context.Context, error) {
	if unauthenticated(method) {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var got string
	if v := md.Get("authorization"); len(v) == 1 {
		got, _ = strings.CutPrefix(v[0], "Bearer ")
	}
	if got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1 {
		return context.WithValue(ctx, principalKey{}, "admin"), nil
	}
	reason := "missing bearer token"
	if got != "" {
		reason = "invalid bearer token"
	}
	from := ""
	if p, ok := peer.FromContext(ctx); ok {
		from = p.Addr.String()
	}
	if err := s.audit.Record(ctx, audit.Event{
		Type: audit.TypeAuthFailed, Actor: from, Resource: method, Decision: audit.Deny, Reason: reason,
	}); err != nil {
		return nil, toStatus(err)
	}
	return nil, status.Error(codes.Unauthenticated, reason)
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
