package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
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

// TestAuditKeepsNoSecrets: a real serve under a policy with principals
// by token, driven through uploads by pre-signed URL (one committed, one
// replayed, one forged, one rejected at commit), failed authentication
// (a wrong token, a real token with a byte added), a function and
// invocations, and reads of the log: neither the audit directory (its
// key files aside) nor anything serve printed holds any token used, any
// token's sha256, the data directory's keys, or the signature of any
// URL used.
func TestAuditKeepsNoSecrets(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	tok := map[string]string{"ops": newToken(t, tokens, "ops"), "audit": newToken(t, tokens, "audit"), "ana": newToken(t, dir, "ana")}
	anaSum := sha256.Sum256([]byte(tok["ana"]))
	policy := fmt.Sprintf(`org: acme
environments:
  - name: default
    visibility: public
networks:
  - name: public
pools:
  - name: default
    environment: default
principals:
  - name: ops
    token_file: tokens/ops.token
    roles: {"*": admin}
  - name: ana
    token_sha256: %s
    roles: {default: developer}
  - name: audit-reader
    token_file: tokens/audit.token
    roles: {"*": auditor}
`, hex.EncodeToString(anaSum[:]))
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	s := serveWith(t, data, "", "--policy", file)

	// secrets are the strings nothing may show: each with what it is.
	secrets := map[string]string{}
	for name, v := range tok {
		sum := sha256.Sum256([]byte(v))
		secrets[v] = name + "'s token"
		secrets[hex.EncodeToString(sum[:])] = name + "'s token sha256"
		secrets[strings.ToUpper(hex.EncodeToString(sum[:]))] = name + "'s token sha256 (upper case)"
		secrets[base64.StdEncoding.EncodeToString(sum[:])] = name + "'s token sha256 (base64)"
	}
	// The data directory's keys and tokens (admin.token, presign.key, and
	// any signing key the audit log keeps), whatever their encoding: the
	// raw bytes, their hex and base64, and a text key's long fields.
	keyFiles := map[string]bool{}
	filepath.WalkDir(data, func(path string, d os.DirEntry, err error) error {
		name := strings.ToLower(d.Name())
		if err != nil || d.IsDir() || !strings.Contains(name, "key") && !strings.HasSuffix(name, ".token") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		keyFiles[path] = true
		rel, _ := filepath.Rel(data, path)
		secrets[hex.EncodeToString(b)] = rel + " (hex)"
		secrets[base64.StdEncoding.EncodeToString(b)] = rel + " (base64)"
		if text := strings.TrimSpace(string(b)); len(text) >= 16 {
			secrets[text] = rel
			for _, field := range strings.FieldsFunc(text, func(r rune) bool { return r == '+' || r == '\n' || r == ' ' }) {
				if len(field) >= 20 {
					secrets[field] = rel + " (a field of it)"
				}
			}
		}
		return nil
	})
	for _, f := range []string{"admin.token", "presign.key"} {
		if !keyFiles[filepath.Join(data, f)] {
			t.Fatalf("%s is not among the data directory's secrets", f)
		}
	}
	signatures := func(raw string) {
		t.Helper()
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for k, vs := range u.Query() {
			if kl := strings.ToLower(k); strings.HasSuffix(kl, "signature") || kl == "sig" {
				for _, v := range vs {
					secrets[v] = "the signature of " + u.Path
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("upload URL %s has no signature parameter", raw)
		}
	}

	// ctxAs carries who's token (s.ctx carries the data dir's).
	ctxAs := func(who string) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return withToken(ctx, tok[who])
	}
	ops := ctxAs("ops")
	arts := s.artifacts()
	put := func(rawURL string, up *udfhostv1.CreateUploadURLResponse, body []byte) int {
		t.Helper()
		req, err := http.NewRequest(up.Method, rawURL, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range up.Headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	upload := func(ctx context.Context, body []byte, claimed []byte) (*udfhostv1.CreateUploadURLResponse, *udfhostv1.Artifact, error) {
		t.Helper()
		sum := sha256.Sum256(claimed)
		up, err := arts.CreateUploadURL(ctx, &udfhostv1.CreateUploadURLRequest{Size: int64(len(claimed)), Sha256: hex.EncodeToString(sum[:])})
		if err != nil {
			t.Fatal(err)
		}
		signatures(up.Url)
		if code := put(up.Url, up, body); code/100 != 2 {
			return up, nil, fmt.Errorf("PUT: %d", code)
		}
		art, err := arts.CommitUpload(ctx, &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
		return up, art, err
	}
	add, err := os.ReadFile(wasm["add"])
	if err != nil {
		t.Fatal(err)
	}
	up, _, err := upload(ops, add, add)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	// Replayed after its commit, and forged: both refused.
	if code := put(up.Url, up, add); code/100 == 2 {
		t.Errorf("replayed upload URL: %d", code)
	}
	forged, _ := url.Parse(up.Url)
	q := forged.Query()
	for k := range q {
		if strings.HasSuffix(strings.ToLower(k), "signature") {
			sig := []byte(q.Get(k))
			sig[0] ^= 1
			q.Set(k, string(sig))
			secrets[string(sig)] = "a forged signature"
		}
	}
	forged.RawQuery = q.Encode()
	if code := put(forged.String(), up, add); code/100 == 2 {
		t.Errorf("forged upload URL: %d", code)
	}
	// Not a module: refused at commit, audited.
	junk := []byte("not a wasm module at all")
	if _, _, err := upload(ctxAs("ana"), junk, junk); status.Code(err) != codes.InvalidArgument {
		t.Errorf("commit of a non-module: %v, want INVALID_ARGUMENT", err)
	}
	_, art, err := upload(ctxAs("ana"), add, add)
	if err != nil {
		t.Fatalf("upload as ana: %v", err)
	}

	// Failed authentication: a wrong token, a real one with a byte added.
	for _, bad := range []string{"wrong-" + tok["ops"][:20], tok["ops"] + "x", tok["ana"] + " " + tok["audit"]} {
		secrets[bad] = "a wrong token"
		if _, errOut, code := s.cli("", "--token", bad, "whoami"); code == 0 || !strings.Contains(errOut, "unauthenticated") {
			t.Errorf("whoami with a wrong token: exit %d %s", code, errOut)
		}
	}

	as := func(who string, args ...string) string {
		t.Helper()
		out, errOut, code := s.cli("[2, 3]\n", append([]string{"--token", tok[who]}, args...)...)
		if code != 0 {
			t.Fatalf("udfhost %s as %s: exit %d: %s", strings.Join(args, " "), who, code, errOut)
		}
		return out
	}
	id := art.Id
	as("ana", "function", "create", "--name", "add", "--artifact", id, "--export", "add", "--signature", "(BIGINT, BIGINT) -> BIGINT")
	for range 3 {
		if got := strings.TrimSpace(as("ana", "invoke", "--function", "add")); got != "5" {
			t.Errorf("invoke: %q, want 5", got)
		}
	}
	// A developer is refused the log, audited; the auditor reads it.
	if _, _, code := s.cli("", "--token", tok["ana"], "audit", "tail"); code == 0 {
		t.Error("a developer tailed the audit log")
	}
	as("audit", "audit", "tail")
	as("audit", "audit", "read")
	as("ana", "function", "delete", "add")
	as("ops", "artifact", "delete", id)

	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// The summaries and the stop are written at shutdown: everything is
	// in by now.
	outputs := map[string]string{"serve's stdout and stderr": s.logs()}
	filepath.WalkDir(filepath.Join(data, "audit"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !keyFiles[path] {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			outputs[path] = string(b)
		}
		return nil
	})
	log := outputs[filepath.Join(data, "audit", "audit.log")]
	for _, typ := range []string{"upload.url_issued", "upload.received", "artifact.committed", "artifact.rejected", "auth.failed",
		"function.created", "invocation.summary", "access.denied", "artifact.deleted"} {
		if !strings.Contains(log, `"type":"`+typ+`"`) {
			t.Errorf("the log has no %s record: the test did not exercise what it checks", typ)
		}
	}
	for where, text := range outputs {
		for secret, what := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds %s", where, what)
			}
		}
	}
	t.Logf("checked %d secrets against %d outputs (%d bytes of log)", len(secrets), len(outputs), len(log))
}
