package names

import (
	"errors"
	"regexp"
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
		{FunctionRef, "add", true},
		{FunctionRef, "acme.analytics.normalize", true},
		{FunctionRef, "acme.analytics." + strings.Repeat("a", 128), true},
		{FunctionRef, "acme.analytics." + strings.Repeat("a", 129), false},
		{FunctionRef, strings.Repeat("o", 63) + "." + strings.Repeat("e", 63) + ".f", true},
		{FunctionRef, strings.Repeat("o", 64) + ".e.f", false},
		{FunctionRef, "analytics.normalize", false},
		{FunctionRef, "x.acme.analytics.normalize", false},
		{FunctionRef, "acme..normalize", false},
		{FunctionRef, ".analytics.normalize", false},
		{FunctionRef, "acme.analytics.", false},
		{FunctionRef, "Acme.analytics.normalize", false},
		{FunctionRef, "acme.analytics.9lives", false},
		{FunctionRef, "acme.ana/lytics.f", false},
		{FunctionRef, "acme.analytics.f\n", false},
		{FunctionRef, huge, false},
		{FunctionRef, "", false},
		{Function, "acme.analytics.normalize", false},
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

// TestCheckIsRule: each pattern kind accepts exactly what the regular
// expression its Rule shows callers matches, on the table above and on
// every short string over the bytes the grammars care about.
func TestCheckIsRule(t *testing.T) {
	alphabet := "aZ0_.-/\x00\n\xffrtpu" // class members, edges and outsiders, the id prefixes' letters
	var inputs []string
	var grow func(prefix string, n int)
	grow = func(prefix string, n int) {
		inputs = append(inputs, prefix)
		if n == 0 {
			return
		}
		for i := 0; i < len(alphabet); i++ {
			grow(prefix+alphabet[i:i+1], n-1)
		}
	}
	grow("", 4)
	inputs = append(inputs, "art-0123456789abcdef", "up-0123456789abcdef", "art-0123456789abcde", "up-0123456789abcdef0",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 128), strings.Repeat("a", 129), "-x", "x-", "default")
	inputs = append(inputs, "a.b.c", "a.b.c.d", "a..c", "acme.analytics.normalize", "a-.0.Z_", "a.b.9", "a.B.c",
		strings.Repeat("a", 63)+".b.c", strings.Repeat("a", 64)+".b.c", "a.b."+strings.Repeat("a", 128), "a.b."+strings.Repeat("a", 129))
	for _, k := range []Kind{Function, FunctionRef, Env, Pool, ArtifactName, ArtifactID, UploadID} {
		pattern, ok := strings.CutPrefix(k.Rule, "must match ")
		if !ok {
			t.Fatalf("%s: rule %q is not a pattern", k.What, k.Rule)
		}
		re := regexp.MustCompile(pattern)
		for _, in := range inputs {
			if got, want := k.Check(in) == nil, re.MatchString(in); got != want {
				t.Errorf("%s: Check(%q) ok=%v, but %s matches: %v", k.What, in, got, pattern, want)
			}
		}
	}
}

func TestSplitFunctionRef(t *testing.T) {
	for _, tc := range []struct {
		in, org, env, fn string
		qualified        bool
	}{
		{"add", "", "", "add", false},
		{"acme.analytics.normalize", "acme", "analytics", "normalize", true},
		{"a.b", "", "", "a.b", false},
		{"a.b.c.d", "", "", "a.b.c.d", false},
		{"..", "", "", "", true},
	} {
		org, env, fn, q := SplitFunctionRef(tc.in)
		if org != tc.org || env != tc.env || fn != tc.fn || q != tc.qualified {
			t.Errorf("SplitFunctionRef(%q) = %q %q %q %v, want %q %q %q %v", tc.in, org, env, fn, q, tc.org, tc.env, tc.fn, tc.qualified)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	for range b.N {
		if Env.Check("default") != nil || Function.Check("affine_batch") != nil {
			b.Fatal("refused")
		}
	}
}
