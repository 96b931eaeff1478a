package names

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	huge := strings.Repeat("a", 1<<20)
	tests := []struct {
		kind Kind
		in   string
		ok   bool
	}{
		{Function, "add", true},
		{Function, "_x9", true},
		{Function, strings.Repeat("a", 128), true},
		{Function, strings.Repeat("a", 129), false},
		{Function, huge, false},
		{Function, "", false},
		{Function, "../evil", false},
		{Function, "a/b", false},
		{Function, "a\x00b", false},
		{Function, "a\nb", false},
		{Function, "9lives", false},
		{Env, "default", true},
		{Env, "Default", false},
		{Env, "nope", true},
		{Env, "../x", false},
		{Pool, "default", true},
		{Pool, "a b", false},
		{ArtifactName, "my.udf-1", true},
		{ArtifactName, "My_UDF.v2", true},
		{ArtifactName, ".hidden", false},
		{ArtifactName, "x/y", false},
		{ArtifactID, "art-0123456789abcdef", true},
		{ArtifactID, "art-0123456789ABCDEF", false},
		{ArtifactID, "art-0123456789abcdef/..", false},
		{UploadID, "up-0123456789abcdef", true},
		{UploadID, "up-0123456789abcdef\n", false},
		{Export, "add", true},
		{Export, "añadir ✓", true},
		{Export, strings.Repeat("e", 256), true},
		{Export, strings.Repeat("e", 257), false},
		{Export, "", false},
		{Export, "a\x00", false},
		{Export, "a\u2028b", false},
		{Export, "a\x7f", false},
		{Export, "\xff", false},
	}
	for _, tc := range tests {
		err := tc.kind.Check(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("%s.Check(%s) = %v, want ok=%v", tc.kind.What, Quote(tc.in), err, tc.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v does not wrap ErrInvalid", tc.kind.What, err)
			}
			if msg := err.Error(); len(msg) > 200 || strings.ContainsAny(msg, "\x00\n") || !strings.HasPrefix(msg, tc.kind.What+": ") {
				t.Errorf("message %q: want one short line starting %q", msg, tc.kind.What+": ")
			}
		}
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"add", `"add"`},
		{"a\nb\x00", `"a\nb\x00"`},
		{strings.Repeat("a", 1<<20), `"` + strings.Repeat("a", 40) + `"… (1048576 bytes)`},
		// A cut never splits a rune.
		{strings.Repeat("a", 39) + "é" + "zzz", `"` + strings.Repeat("a", 39) + `"… (44 bytes)`},
	}
	for _, tc := range tests {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%.50q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	e := Function.Check(strings.Repeat("a", 1<<20)).Error()
	if want := `function name: must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$, got "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"… (1048576 bytes)`; e != want {
		t.Errorf("message %s, want %s", e, want)
	}
}
