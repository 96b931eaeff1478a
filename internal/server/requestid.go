package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// requestIDHeader is the metadata key a caller may send its own request
// id in, and the response header every call's id is sent back in.
const requestIDHeader = "x-request-id"

// maxRequestIDLen bounds a caller's request id: it goes into every audit
// record of the call and the server's log line.
const maxRequestIDLen = 128

type callNoteKey struct{}

// callNote is what the request id interceptor knows of its call: the id,
// and the principal once authenticate has named it (the interceptor's
// context is the outer one, without the caller), for the log line.
type callNote struct {
	requestID, principal string
}

func noteOf(ctx context.Context) *callNote {
	n, _ := ctx.Value(callNoteKey{}).(*callNote)
	return n
}

// requestIDOf returns the request id of the call in ctx, "" outside one.
func requestIDOf(ctx context.Context) string {
	if n := noteOf(ctx); n != nil {
		return n.requestID
	}
	return ""
}

// newRequestID is 16 random hex digits.
func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// checkRequestID reports what is wrong with a caller's request id: it
// must be 1 to maxRequestIDLen printable ASCII characters, no spaces.
func checkRequestID(id string) error {
	if len(id) > maxRequestIDLen {
		return fmt.Errorf("%s is %d bytes long; at most %d printable ASCII characters are allowed", requestIDHeader, len(id), maxRequestIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < '!' || c > '~' {
			return fmt.Errorf("%s has byte %#02x at offset %d; only printable ASCII without spaces is allowed", requestIDHeader, c, i)
		}
	}
	return nil
}

// withRequestID gives the call in ctx its request id: the caller's
// x-request-id when it sent one, else a new one. A malformed one (more
// than one value, too long, not printable ASCII) is a caller mistake the
// call is refused for with INVALID_ARGUMENT, rather than replaced: a
// caller correlating its calls by it would otherwise find them under ids
// it never sent. Either way the id is in ctx (so the refusal's log line
// carries one) and set as the response header, which gRPC sends with an
// error too.
func withRequestID(ctx context.Context) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var bad error
	id := ""
	switch v := md.Get(requestIDHeader); len(v) {
	case 0:
	case 1:
		if bad = checkRequestID(v[0]); bad == nil {
			id = v[0]
		}
	default:
		bad = fmt.Errorf("%d %s values; send at most one", len(v), requestIDHeader)
	}
	if id == "" {
		id = newRequestID()
	}
	ctx = context.WithValue(ctx, callNoteKey{}, &callNote{requestID: id})
	// Fails only when the headers were sent already, which they cannot
	// be before the handler runs.
	grpc.SetHeader(ctx, metadata.Pairs(requestIDHeader, id))
	if bad != nil {
		return ctx, status.Error(codes.InvalidArgument, bad.Error())
	}
	return ctx, nil
}

func (s *Server) requestIDUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := withRequestID(ctx)
	if err == nil {
		var resp any
		resp, err = h(ctx, req)
		if err == nil {
			return resp, nil
		}
	}
	s.logFailure(ctx, info.FullMethod, err)
	return nil, err
}

func (s *Server) requestIDStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := withRequestID(ss.Context())
	if err == nil {
		err = h(srv, &authedStream{ServerStream: ss, ctx: ctx})
	}
	if err != nil {
		s.logFailure(ctx, info.FullMethod, err)
	}
	return err
}

// logFailure is the server's log line of a failed call, with its request
// id and principal: a warning for the host's faults, info for the rest. A
// call the client cancelled is not logged. The message is the one the
// caller got, which never holds a secret.
func (s *Server) logFailure(ctx context.Context, method string, err error) {
	st := status.Convert(err)
	lvl := slog.LevelInfo
	switch st.Code() {
	case codes.Canceled:
		return
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.DataLoss:
		lvl = slog.LevelWarn
	}
	n := noteOf(ctx)
	s.log.Log(ctx, lvl, "call failed", "rpc", method, "code", st.Code().String(), "request_id", n.requestID,
		"principal", n.principal, "err", st.Message())
}
