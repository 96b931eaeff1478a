package sectest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/bearer"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// localAddrs remembers the client-side address of every connection a
// dialer made, so a case can find its own audit records (the server
// records the peer address of failed authentications).
type localAddrs struct {
	mu    sync.Mutex
	addrs []string
}

func (l *localAddrs) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err == nil {
		l.mu.Lock()
		l.addrs = append(l.addrs, c.LocalAddr().String())
		l.mu.Unlock()
	}
	return c, err
}

func (l *localAddrs) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.addrs...)
}

// dial connects to addr with token (none if empty), recording local
// addresses in la if not nil.
func dial(addr, token string, la *localAddrs) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer.Token(token)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(300<<20), grpc.MaxCallSendMsgSize(80<<20)),
	}
	if la != nil {
		opts = append(opts, grpc.WithContextDialer(la.dial))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return conn, nil
}

// api bundles the service clients of one connection.
type api struct {
	art udfhostv1.ArtifactServiceClient
	fn  udfhostv1.FunctionServiceClient
	inv udfhostv1.InvokeServiceClient
}

func newAPI(conn *grpc.ClientConn) api {
	return api{udfhostv1.NewArtifactServiceClient(conn), udfhostv1.NewFunctionServiceClient(conn), udfhostv1.NewInvokeServiceClient(conn)}
}

// failure is where and how a step of the API refused something.
type failure struct {
	stage, code, msg string
}

func (f *failure) Error() string { return f.stage + ": " + f.code + ": " + f.msg }

// grpcFailure describes a gRPC error at stage.
func grpcFailure(stage string, err error) *failure {
	st := status.Convert(err)
	return &failure{stage: stage, code: st.Code().String(), msg: st.Message()}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// requestURL asks for an upload URL declaring data's size and digest.
func (a api) requestURL(ctx context.Context, name string, data []byte, ttl int64) (*udfhostv1.CreateUploadURLResponse, error) {
	return a.requestURLIn(ctx, "default", udfhostv1.ArtifactKind_ARTIFACT_KIND_UDF, name, data, ttl)
}

// requestURLIn is requestURL for an artifact of kind in env.
func (a api) requestURLIn(ctx context.Context, env string, kind udfhostv1.ArtifactKind, name string, data []byte, ttl int64) (*udfhostv1.CreateUploadURLResponse, error) {
	up, err := a.art.CreateUploadURL(ctx, &udfhostv1.CreateUploadURLRequest{
		Kind: kind, Env: env, Name: name,
		Size: int64(len(data)), Sha256: sha256Hex(data), TtlSeconds: ttl,
	})
	if err != nil {
		return nil, grpcFailure("url", err)
	}
	return up, nil
}

// upload runs the whole upload: URL, PUT, commit. The error is a *failure
// naming the step that refused; ids has the upload id once there is one.
func (a api) upload(ctx context.Context, name string, data []byte) (art *udfhostv1.Artifact, uploadID string, err error) {
	return a.uploadIn(ctx, "default", udfhostv1.ArtifactKind_ARTIFACT_KIND_UDF, name, data)
}

// uploadIn is upload for an artifact of kind in env.
func (a api) uploadIn(ctx context.Context, env string, kind udfhostv1.ArtifactKind, name string, data []byte) (art *udfhostv1.Artifact, uploadID string, err error) {
	up, err := a.requestURLIn(ctx, env, kind, name, data, 0)
	if err != nil {
		return nil, "", err
	}
	if res := put(ctx, up.Url, up.Headers, bytes.NewReader(data), int64(len(data))); res.err != nil || res.status/100 != 2 {
		return nil, up.UploadId, res.failure()
	}
	art, err = a.art.CommitUpload(ctx, &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
	if err != nil {
		return nil, up.UploadId, grpcFailure("commit", err)
	}
	return art, up.UploadId, nil
}

// putResult is what the pre-signed URL endpoint answered.
type putResult struct {
	status int
	msg    string
	local  string // client address of the connection
	err    error  // transport error
}

func (r putResult) failure() *failure {
	if r.err != nil {
		return &failure{stage: "put", code: "transport", msg: r.err.Error()}
	}
	return &failure{stage: "put", code: fmt.Sprintf("HTTP %d", r.status), msg: r.msg}
}

// put sends body to a pre-signed URL over a connection of its own.
func put(ctx context.Context, url string, headers map[string]string, body io.Reader, size int64) putResult {
	var la localAddrs
	tr := &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return la.dial(ctx, addr) }, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
	if err != nil {
		return putResult{err: err}
	}
	req.ContentLength = size
	for k, v := range headers {
		if !strings.EqualFold(k, "Content-Length") {
			req.Header.Set(k, v)
		}
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	res := putResult{err: err}
	if l := la.list(); len(l) > 0 {
		res.local = l[0]
	}
	if err != nil {
		return res
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	res.status, res.msg = resp.StatusCode, strings.TrimSpace(string(msg))
	return res
}

// createFunction binds export of art under name.
func (a api) createFunction(ctx context.Context, name, artID, export, sig, abi string) (*udfhostv1.FunctionInfo, error) {
	return a.createFunctionIn(ctx, &udfhostv1.CreateFunctionRequest{Name: name, ArtifactId: artID, Export: export, Signature: sig, Env: "default", Pool: "default"}, abi)
}

// createFunctionIn creates the function req describes (abi as in
// createFunction).
func (a api) createFunctionIn(ctx context.Context, req *udfhostv1.CreateFunctionRequest, abi string) (*udfhostv1.FunctionInfo, error) {
	switch abi {
	case "", "auto":
	case "direct":
		req.Abi = udfhostv1.ABI_ABI_DIRECT
	case "batch":
		req.Abi = udfhostv1.ABI_ABI_BATCH
	default:
		return nil, fmt.Errorf("unknown ABI %q", abi)
	}
	f, err := a.fn.CreateFunction(ctx, req)
	if err != nil {
		return nil, grpcFailure("create", err)
	}
	return f, nil
}

// errNoFunction is returned by helpers that need a function the case did
// not get to create.
var errNoFunction = errors.New("no function")
