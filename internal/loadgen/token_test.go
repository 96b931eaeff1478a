package loadgen

import (
	"context"
	"testing"
)

// TestBearerTrimsToken: a token read from a file with its newline (or
// CRLF) is sent without it.
func TestBearerTrimsToken(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	for _, raw := range []string{tok, tok + "\n", tok + "\r\n", "  " + tok + " "} {
		md, err := bearer(raw).GetRequestMetadata(context.Background())
		if err != nil || md["authorization"] != "Bearer "+tok {
			t.Errorf("bearer(%q) sends %v %v", raw, md, err)
		}
	}
}
