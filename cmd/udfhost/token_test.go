package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/internal/bearer"
)

// TestTokenValue: the token file's trailing newline (or CRLF) and any
// whitespace around --token are not part of the token; the header sent is
// exactly "Bearer <token>".
func TestTokenValue(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, flag, file string // file "" means no file
		want, err        string
	}{
		{"file with newline", "", tok + "\n", tok, ""},
		{"file with CRLF", "", tok + "\r\n", tok, ""},
		{"file with spaces", "", "  " + tok + " \n\n", tok, ""},
		{"file without newline", "", tok, tok, ""},
		{"flag with CR", tok + "\r", "", tok, ""},
		{"flag with newline", tok + "\n", "", tok, ""},
		{"flag wins", tok, "other\n", tok, ""},
		{"blank flag falls back to the file", " \n", tok + "\n", tok, ""},
		{"empty file", "", "\n", "", "is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			g := &globals{data: dir, token: tc.flag}
			got, err := g.tokenValue()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q %v, want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
	// The credentials trim too, whoever built them.
	for _, raw := range []string{tok, tok + "\n", tok + "\r\n", " " + tok} {
		md, _ := bearer.Token(raw).GetRequestMetadata(context.Background())
		if md["authorization"] != "Bearer "+tok {
			t.Errorf("bearer(%q) sends %q", raw, md["authorization"])
		}
	}
}
