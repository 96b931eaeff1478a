package bearer

import (
	"context"
	"testing"
)

// TestTokenTrims: a token read from a file with its newline (or CRLF) is
// sent without it; an empty one sends no header.
func TestTokenTrims(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	for _, raw := range []string{tok, tok + "\n", tok + "\r\n", "  " + tok + " "} {
		md, err := Token(raw).GetRequestMetadata(context.Background())
		if err != nil || md["authorization"] != "Bearer "+tok {
			t.Errorf("Token(%q) sends %v %v", raw, md, err)
		}
	}
	for _, raw := range []string{"", "\n", " \r\n"} {
		if md, _ := Token(raw).GetRequestMetadata(context.Background()); md != nil {
			t.Errorf("Token(%q) sends %v, want no header", raw, md)
		}
	}
}
