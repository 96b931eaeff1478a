package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/audit"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

var generatedID = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestCheckRequestID(t *testing.T) {
	for _, tc := range []struct {
		id, problem string
	}{
		{"abc-123", ""},
		{strings.Repeat("x", maxRequestIDLen), ""},
		{"!~{}[]()<>\"'\\", ""},
		{strings.Repeat("x", maxRequestIDLen+1), "129 bytes long"},
		{"has space", "byte 0x20 at offset 3"},
		{"tab\there", "byte 0x09 at offset 3"},
		{"caf\u00e9", "byte 0xc3 at offset 3"},
		{"nul\x00", "byte 0x00 at offset 3"},
	} {
		err := checkRequestID(tc.id)
		if tc.problem == "" && err != nil {
			t.Errorf("%q: %v, want accepted", tc.id, err)
		}
		if tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)) {
			t.Errorf("%q: %v, want an error saying %q", tc.id, err, tc.problem)
		}
	}
}

// recordsOfRequest returns the types of the records carrying request id id.
func recordsOfRequest(recs []audit.Record, id string) []string {
	var types []string
	for _, r := range recs {
		if r.RequestID == id {
			types = append(types, r.Type)
		}
	}
	return types
}

// TestRequestID: a call's x-request-id, the caller's or a generated one,
// comes back in the response header, on success and on error, unary and
// streaming, and is on every audit record of the call: the server's own
// and the artifact store's, including the upload the call's URL
// received later. A malformed one is refused with INVALID_ARGUMENT.
func TestRequestID(t *testing.T) {
	l := startLive(t, nil)
	arts := l.artifacts()
	wasm := addK(t, 0)
	sum := sha256.Sum256(wasm)

	var hdr metadata.MD
	up, err := arts.CreateUploadURL(metadata.AppendToOutgoingContext(l.ctx, requestIDHeader, "abc-123"),
		&udfhostv1.CreateUploadURLRequest{Size: int64(len(wasm)), Sha256: hex.EncodeToString(sum[:])}, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(requestIDHeader); len(got) != 1 || got[0] != "abc-123" {
		t.Errorf("CreateUploadURL with x-request-id abc-123: response header %v", got)
	}
	req, _ := http.NewRequest(up.Method, up.Url, bytes.NewReader(wasm))
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT: %s", resp.Status)
	}

	// No id sent: one is generated.
	hdr = nil
	art, err := arts.CommitUpload(l.ctx, &udfhostv1.CommitUploadRequest{UploadId: up.UploadId}, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	commitID := strings.Join(hdr.Get(requestIDHeader), ",")
	if !generatedID.MatchString(commitID) {
		t.Errorf("CommitUpload without x-request-id: response header %q, want 16 hex digits", commitID)
	}
	hdr = nil
	_, err = l.functions().CreateFunction(metadata.AppendToOutgoingContext(l.ctx, requestIDHeader, "fn-1"), &udfhostv1.CreateFunctionRequest{
		Name: "add", ArtifactId: art.Id, Export: "add", Signature: "(BIGINT, BIGINT) -> BIGINT"}, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}

	// On an error too.
	hdr = nil
	_, err = l.functions().GetFunction(metadata.AppendToOutgoingContext(l.ctx, requestIDHeader, "missing-1"),
		&udfhostv1.GetFunctionRequest{Name: "nosuch"}, grpc.Header(&hdr))
	if status.Code(err) != codes.NotFound || strings.Join(hdr.Get(requestIDHeader), ",") != "missing-1" {
		t.Errorf("GetFunction of a missing function: %v, header %v; want NOT_FOUND with x-request-id missing-1", err, hdr.Get(requestIDHeader))
	}

	// A stream.
	stream, err := udfhostv1.NewAuditServiceClient(l.conn).ReadAudit(metadata.AppendToOutgoingContext(l.ctx, requestIDHeader, "read-1"), &udfhostv1.ReadAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := stream.Header(); err != nil || strings.Join(h.Get(requestIDHeader), ",") != "read-1" {
		t.Errorf("ReadAudit stream header: %v, %v; want x-request-id read-1", h.Get(requestIDHeader), err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
	}

	recs := l.records()
	for id, want := range map[string][]string{
		"abc-123": {audit.TypeUploadURLIssued, audit.TypeUploadReceived},
		commitID:  {audit.TypeArtifactCommitted},
		// The worker its pod needed was started for the call.
		"fn-1": {audit.TypeWorkerStarted, audit.TypeFunctionCreated},
	} {
		if got := recordsOfRequest(recs, id); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("records with request_id %q: %v, want %v", id, got, want)
		}
	}

	t.Run("malformed", func(t *testing.T) {
		for name, ids := range map[string][]string{
			"too long":   {strings.Repeat("a", maxRequestIDLen+1)},
			"space":      {"a b"},
			"two values": {"a", "b"},
		} {
			ctx := l.ctx
			for _, id := range ids {
				ctx = metadata.AppendToOutgoingContext(ctx, requestIDHeader, id)
			}
			var hdr metadata.MD
			_, err := l.functions().ListFunctions(ctx, &udfhostv1.ListFunctionsRequest{}, grpc.Header(&hdr))
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), requestIDHeader) {
				t.Errorf("%s: %v, want INVALID_ARGUMENT naming %s", name, err, requestIDHeader)
			}
			if got := strings.Join(hdr.Get(requestIDHeader), ","); !generatedID.MatchString(got) {
				t.Errorf("%s: response header %q, want a generated id", name, got)
			}
		}
	})
}

// TestCallLogStamps: the audit log the server writes stamps the call's
// request id on a record without one, and leaves one that names its own
// (an upload received long after the call that issued its URL).
func TestCallLogStamps(t *testing.T) {
	l, err := openAudit(t.TempDir()+"/audit.log", audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.WithValue(context.Background(), callNoteKey{}, &callNote{requestID: "call-1"})
	for _, e := range []audit.Event{
		{Type: audit.TypeFunctionCreated, Decision: audit.Allow},
		{Type: audit.TypeUploadReceived, Decision: audit.Allow, RequestID: "issuer-1"},
	} {
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Record(context.Background(), audit.Event{Type: audit.TypeServerStopped, Decision: audit.Allow}); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := audit.Read(l.Path(), 0, func(r audit.Record) error { got = append(got, r.RequestID); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "call-1,issuer-1," {
		t.Errorf("request ids %q, want call-1, issuer-1 and none", got)
	}
}

// TestFailureLogLine: the server's log line of a failed call names its
// request id, principal, RPC and code; a cancelled call has none.
func TestFailureLogLine(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{log: slog.New(slog.NewTextHandler(&buf, nil))}
	ctx := context.WithValue(context.Background(), callNoteKey{}, &callNote{requestID: "abc-123", principal: "ana"})
	s.logFailure(ctx, "/udfhost.v1.FunctionService/GetFunction", status.Error(codes.NotFound, "function default/x not found"))
	s.logFailure(ctx, "/udfhost.v1.FunctionService/GetFunction", status.Error(codes.Canceled, "gone"))
	line := buf.String()
	for _, want := range []string{"request_id=abc-123", "principal=ana", "rpc=/udfhost.v1.FunctionService/GetFunction", "code=NotFound", "level=INFO"} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %s", line, want)
		}
	}
	if n := strings.Count(line, "\n"); n != 1 {
		t.Errorf("%d log lines, want 1 (none for the cancelled call): %q", n, line)
	}
}
