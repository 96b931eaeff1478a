package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// putURL sends body to a pre-signed URL and returns the status and message.
func putURL(t *testing.T, rawURL string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/wasm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(msg))
}

// assertNothingStored checks that no artifact, object or staged byte exists.
func (s *server) assertNothingStored() {
	s.t.Helper()
	resp, err := s.artifacts().ListArtifacts(s.ctx(), &udfhostv1.ListArtifactsRequest{})
	if err != nil {
		s.t.Fatal(err)
	}
	if len(resp.Artifacts) != 0 {
		s.t.Errorf("artifacts stored after a rejected upload: %v", resp.Artifacts)
	}
	for _, pattern := range []string{"objects/sha256/*", "meta/*", "uploads/*.wasm", "uploads/.tmp*", "uploads/*.part*"} {
		matches, _ := filepath.Glob(filepath.Join(s.data, "artifacts", pattern))
		if len(matches) != 0 {
			s.t.Errorf("files left behind: %v", matches)
		}
	}
}

func TestUploadRejectsBadInput(t *testing.T) {
	good, err := os.ReadFile(wasm["add"])
	if err != nil {
		t.Fatal(err)
	}
	other := append([]byte(nil), good...)
	other[len(other)-1] ^= 1

	tests := []struct {
		name       string
		declare    []byte // size and sha256 declared
		send       []byte // what is PUT
		ttl        int64
		wait       time.Duration
		tamper     func(u *url.URL)
		wantStatus int
		wantMsg    string
	}{
		{name: "wrong sha256", declare: good, send: other, wantStatus: 400, wantMsg: "sha256 mismatch"},
		{name: "larger than declared", declare: good, send: append(append([]byte(nil), good...), 0, 0, 0, 0), wantStatus: 413, wantMsg: "declared"},
		{name: "smaller than declared", declare: good, send: good[:len(good)-3], wantStatus: 400, wantMsg: "does not match declared size"},
		{name: "expired URL", declare: good, send: good, ttl: 1, wait: 2100 * time.Millisecond, wantStatus: 403, wantMsg: "expired"},
		{name: "tampered signature", declare: good, send: good, wantStatus: 403, wantMsg: "signature",
			tamper: func(u *url.URL) {
				q := u.Query()
				sig := []byte(q.Get("X-Udfhost-Signature"))
				// Another hex digit: the URL stays well-formed, its MAC wrong.
				if sig[0] == '0' {
					sig[0] = '1'
				} else {
					sig[0] = '0'
				}
				q.Set("X-Udfhost-Signature", string(sig))
				u.RawQuery = q.Encode()
			}},
		{name: "tampered size", declare: good, send: good, wantStatus: 403, wantMsg: "signature",
			tamper: func(u *url.URL) {
				q := u.Query()
				q.Set("X-Udfhost-Size", "999")
				u.RawQuery = q.Encode()
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			up, err := s.artifacts().CreateUploadURL(s.ctx(), &udfhostv1.CreateUploadURLRequest{
				Kind: udfhostv1.ArtifactKind_ARTIFACT_KIND_UDF, Size: int64(len(tc.declare)), Sha256: sha(tc.declare), TtlSeconds: tc.ttl,
			})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(tc.wait)
			u, _ := url.Parse(up.Url)
			if tc.tamper != nil {
				tc.tamper(u)
			}
			code, msg := putURL(t, u.String(), tc.send)
			if code != tc.wantStatus || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("PUT: %d %q; want %d containing %q", code, msg, tc.wantStatus, tc.wantMsg)
			}
			if strings.Contains(msg, u.Query().Get("X-Udfhost-Signature")) {
				t.Errorf("error message reveals the signature: %q", msg)
			}
			if _, err := s.artifacts().CommitUpload(s.ctx(), &udfhostv1.CommitUploadRequest{UploadId: up.UploadId}); status.Code(err) != codes.FailedPrecondition {
				t.Errorf("commit after a refused upload: %v; want FAILED_PRECONDITION", err)
			}
			s.assertNothingStored()
			if !s.hasAudit("upload.rejected") && tc.name != "tampered signature" && tc.name != "tampered size" && tc.name != "expired URL" {
				t.Errorf("no upload.rejected audit record")
			}
		})
	}
}

func TestUploadURLIsSingleUse(t *testing.T) {
	s := startServer(t)
	good, _ := os.ReadFile(wasm["add"])
	up, err := s.artifacts().CreateUploadURL(s.ctx(), &udfhostv1.CreateUploadURLRequest{Size: int64(len(good)), Sha256: sha(good)})
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := putURL(t, up.Url, good); code != 200 {
		t.Fatalf("first PUT: %d %s", code, msg)
	}
	if code, msg := putURL(t, up.Url, good); code != 409 || !strings.Contains(msg, "already used") {
		t.Errorf("second PUT: %d %q; want 409 already used", code, msg)
	}
	art, err := s.artifacts().CommitUpload(s.ctx(), &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
	if err != nil {
		t.Fatal(err)
	}
	if art.Digest != "sha256:"+sha(good) {
		t.Errorf("digest %s", art.Digest)
	}
	if _, err := s.artifacts().CommitUpload(s.ctx(), &udfhostv1.CommitUploadRequest{UploadId: up.UploadId}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second commit: %v; want FAILED_PRECONDITION", err)
	}
}

func TestUploadRejectsBadModules(t *testing.T) {
	add, _ := os.ReadFile(wasm["add"])
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	tests := []struct {
		name, file, want string
	}{
		{"not wasm", write("hello.wasm", []byte("hello, this is not a module")), "not a WebAssembly module"},
		{"truncated", write("trunc.wasm", add[:len(add)-5]), "invalid module"},
		{"disallowed import", wasm["disallowed"], "disallowed import: env.system"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			_, errOut, code := s.cli("", "artifact", "upload", tc.file)
			if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want one line containing %q", code, errOut, tc.want)
			}
			s.assertNothingStored()
			if !s.hasAudit("artifact.rejected") {
				t.Error("no artifact.rejected audit record")
			}
		})
	}
}

func TestUnauthenticatedCallsAreRefusedAndAudited(t *testing.T) {
	s := startServer(t)
	for _, tok := range []string{"", "wrong-token"} {
		ctx := s.ctxNoToken()
		if tok != "" {
			ctx = withToken(ctx, tok)
		}
		_, err := s.artifacts().ListArtifacts(ctx, &udfhostv1.ListArtifactsRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("token %q: %v; want UNAUTHENTICATED", tok, err)
		}
	}
	n := 0
	for _, r := range s.auditRecords() {
		if r.Type == "auth.failed" && r.Decision == "deny" {
			n++
			if strings.Contains(r.Reason, "wrong-token") {
				t.Errorf("audit record reveals the token: %v", r.Reason)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d auth.failed records, want 2", n)
	}
}
