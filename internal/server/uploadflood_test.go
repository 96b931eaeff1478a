package server

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/audit"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// TestForgedUploadURLFloodAggregated: the upload endpoint is anonymous
// too (the URL is the credential), so a flood of forged URLs is accounted
// for like a flood of bad tokens: every refusal counted, the first few of
// a source recorded one by one, the rest in aggregated records, and the
// audit log stays small. Attacker-chosen text in a malformed URL does not
// make each request a group of its own.
func TestForgedUploadURLFloodAggregated(t *testing.T) {
	l := startLive(t, nil)
	body := []byte("\x00asm\x01\x00\x00\x00")
	sum := sha256.Sum256(body)
	up, err := l.artifacts().CreateUploadURL(l.ctx, &udfhostv1.CreateUploadURLRequest{
		Kind: udfhostv1.ArtifactKind_ARTIFACT_KIND_UDF, Size: int64(len(body)), Sha256: hex.EncodeToString(sum[:]),
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(up.Url)
	if err != nil {
		t.Fatal(err)
	}
	forged := func(i int) string {
		q := u.Query()
		if i%2 == 0 {
			for k, v := range q { // another hex digit: well-formed, wrong
				if strings.Contains(strings.ToLower(k), "sig") && len(v) == 1 && v[0] != "" {
					b := []byte(v[0])
					if b[0] == '0' {
						b[0] = '1'
					} else {
						b[0] = '0'
					}
					q.Set(k, string(b))
				}
			}
		} else {
			q.Set("junk"+strconv.Itoa(i), "x") // malformed, a new text each time
		}
		v := *u
		v.RawQuery = q.Encode()
		return v.String()
	}
	before := len(l.records())
	const n = 400
	client := &http.Client{}
	for i := range n {
		req, _ := http.NewRequest(http.MethodPut, forged(i), strings.NewReader(string(body)))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("forged URL %d: HTTP %d, want 403", i, resp.StatusCode)
		}
	}
	if err := l.s.authFails.flush(l.ctx); err != nil {
		t.Fatal(err)
	}
	recs, counted := 0, 0
	for _, r := range l.records()[before:] {
		if r.Type != audit.TypeAuthFailed || r.Resource != "upload-url" {
			continue
		}
		recs++
		c, err := strconv.Atoi(r.Details["count"])
		if err != nil {
			t.Fatalf("record without a count: %+v", r)
		}
		counted += c
		if strings.Contains(r.Reason, "junk") {
			t.Errorf("the client's text is the group's reason: %q", r.Reason)
		}
	}
	if counted != n {
		t.Errorf("records account for %d of %d refusals", counted, n)
	}
	// Two reasons (signature, malformed): failBurst each, and one count.
	if recs > 2*(failBurst+1) {
		t.Errorf("%d auth.failed records for %d forged URLs from one client, want at most %d", recs, n, 2*(failBurst+1))
	}
}

// TestURLEndpointHeadersBounded: the anonymous URL endpoint refuses a
// request whose headers are far beyond what a pre-signed PUT needs
// (431), and still serves ordinary ones.
func TestURLEndpointHeadersBounded(t *testing.T) {
	l := startLive(t, nil)
	get := func(junk int) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+l.s.HTTPAddr()+"/healthz", nil)
		req.Header.Set("X-Junk", strings.Repeat("a", junk))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(4 << 10); code != http.StatusOK {
		t.Fatalf("4 KiB of headers: HTTP %d, want 200", code)
	}
	if code := get(512 << 10); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("512 KiB of headers: HTTP %d, want 431", code)
	}
}
