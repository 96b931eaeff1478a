package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/jsonrows"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
	"github.com/udfhost/udfhost/sandbox"
)

// The test binary doubles as the worker: the server re-executes
// /proc/self/exe with "worker". An init function (not TestMain) so that
// it composes with any other test set-up of this package.
func init() {
	if len(os.Args) == 2 && os.Args[1] == "worker" {
		os.Exit(sandbox.WorkerMain())
	}
}

// liveServer is a real Server on port 0 with its own data directory and
// an authenticated client.
type liveServer struct {
	t    *testing.T
	s    *Server
	conn *grpc.ClientConn
	ctx  context.Context
}

func startLive(t *testing.T, policy *policies.Policy) *liveServer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (jailed workers, cgroups)")
	}
	s := New(Config{
		DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		Policy: policy, Logger: slog.New(slog.DiscardHandler), SummaryInterval: time.Hour,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start server: %v", err)
	}
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(policies.MaxMessageBytes), grpc.MaxCallSendMsgSize(policies.MaxMessageBytes)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
		defer scancel()
		if err := s.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &liveServer{t: t, s: s, conn: conn, ctx: metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.token)}
}

func (l *liveServer) artifacts() udfhostv1.ArtifactServiceClient {
	return udfhostv1.NewArtifactServiceClient(l.conn)
}
func (l *liveServer) functions() udfhostv1.FunctionServiceClient {
	return udfhostv1.NewFunctionServiceClient(l.conn)
}
func (l *liveServer) invoker() udfhostv1.InvokeServiceClient {
	return udfhostv1.NewInvokeServiceClient(l.conn)
}

// wat compiles WebAssembly text with wat2wasm.
func wat(t *testing.T, src string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("wat2wasm", "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm (make deps installs wabt): %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// addK is a module whose export "add" returns a + b + k: a different k,
// a different artifact digest (and so pod).
func addK(t *testing.T, k int) []byte {
	return wat(t, fmt.Sprintf(`(module (func (export "add") (param i64 i64) (result i64)
		(i64.add (i64.const %d) (i64.add (local.get 0) (local.get 1)))))`, k))
}

// upload stores wasm as an artifact of env "default" and returns it.
func (l *liveServer) upload(wasm []byte) *udfhostv1.Artifact {
	l.t.Helper()
	sum := sha256.Sum256(wasm)
	up, err := l.artifacts().CreateUploadURL(l.ctx, &udfhostv1.CreateUploadURLRequest{Size: int64(len(wasm)), Sha256: hex.EncodeToString(sum[:])})
	if err != nil {
		l.t.Fatalf("CreateUploadURL: %v", err)
	}
	req, err := http.NewRequest(up.Method, up.Url, bytes.NewReader(wasm))
	if err != nil {
		l.t.Fatal(err)
	}
	for k, v := range up.Headers {
		if k != "Content-Length" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		l.t.Fatalf("PUT upload: %s", resp.Status)
	}
	art, err := l.artifacts().CommitUpload(l.ctx, &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
	if err != nil {
		l.t.Fatalf("CommitUpload: %v", err)
	}
	return art
}

func (l *liveServer) createAdd(name, artifactID string) (*udfhostv1.FunctionInfo, error) {
	return l.functions().CreateFunction(l.ctx, &udfhostv1.CreateFunctionRequest{
		Name: name, ArtifactId: artifactID, Export: "add", Signature: "(BIGINT, BIGINT) -> BIGINT"})
}

func (l *liveServer) mustCreateAdd(name, artifactID string) *udfhostv1.FunctionInfo {
	l.t.Helper()
	f, err := l.createAdd(name, artifactID)
	if err != nil {
		l.t.Fatalf("CreateFunction %s: %v", name, err)
	}
	return f
}

// add invokes fn on one row (a, b) and returns the answer.
func (l *liveServer) add(fn string, a, b int64) (int64, error) {
	rows := jsonrows.NewBuilder([]udfhostv1.SqlType{udfhostv1.SqlType_TYPE_BIGINT, udfhostv1.SqlType_TYPE_BIGINT})
	if err := rows.AddLine(fmt.Appendf(nil, "[%d, %d]", a, b)); err != nil {
		l.t.Fatal(err)
	}
	resp, err := l.invoker().Invoke(l.ctx, &udfhostv1.InvokeRequest{Function: fn, Batch: rows.Batch()})
	if err != nil {
		return 0, err
	}
	if len(resp.Errors) > 0 || resp.Result == nil || len(resp.Result.Values) != 8 {
		return 0, fmt.Errorf("invoke %s: unexpected answer %v", fn, resp)
	}
	return int64(binary.LittleEndian.Uint64(resp.Result.Values)), nil
}

// records returns the audit log's records so far.
func (l *liveServer) records() []audit.Record {
	return readAudit(l.t, filepath.Join(l.s.cfg.DataDir, "audit", "audit.log"))
}

// live returns the SPIFFE IDs of the live pods.
func (l *liveServer) live() map[string]bool {
	out := map[string]bool{}
	for _, id := range l.s.pods.Live() {
		out[id.SPIFFEID()] = true
	}
	return out
}
