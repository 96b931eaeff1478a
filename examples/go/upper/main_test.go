package main

import (
	"os"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

func TestAppendUpper(t *testing.T) {
	c := cases.Upper(language.Und)
	tests := []struct{ in, want string }{
		{"", ""},
		{"hello, World 123", "HELLO, WORLD 123"},
		{"straße", "STRASSE"},
		{"grüße", "GRÜSSE"},
		{"ǆ ﬃ ŉ", "Ǆ FFI ʼN"},                                 // one rune to a title-case pair, ligature, two runes
		{"\u0390", "\u0399\u0308\u0301"},                      // one rune to three
		{"abc ß", "ABC SS"},                                   // ASCII prefix, then not
		{strings.Repeat("ß", 300), strings.Repeat("SS", 300)}, // grows the buffer
		{"ÄÖÜ already", "ÄÖÜ ALREADY"},
	}
	for _, tc := range tests {
		for _, prefix := range []string{"", "kept|"} {
			// A buffer with spare capacity and one without.
			for _, dst := range [][]byte{[]byte(prefix), append(make([]byte, 0, 1024), prefix...)} {
				got, err := appendUpper(c, dst, tc.in)
				if err != nil || string(got) != prefix+tc.want {
					t.Errorf("appendUpper(%q, %q) = %q, %v; want %q", prefix, tc.in, got, err, prefix+tc.want)
				}
			}
		}
	}
	if _, err := appendUpper(c, nil, "bad \xff"); err != errInvalidUTF8 {
		t.Errorf("invalid UTF-8: err %v, want %v", err, errInvalidUTF8)
	}
	// The caser is reused after an error and after a long string.
	if got, _ := appendUpper(c, nil, "ok ß"); string(got) != "OK SS" {
		t.Errorf("after reuse: %q", got)
	}
}

// TestUnicodeVersionDocumented: the guest SDK docs name the Unicode version
// a guest built with this module's toolchain gets, for package unicode and
// for golang.org/x/text/cases; both agree, and docs/ABI.md says which.
func TestUnicodeVersionDocumented(t *testing.T) {
	if cases.UnicodeVersion != unicode.Version {
		t.Errorf("golang.org/x/text/cases has Unicode %s, package unicode %s", cases.UnicodeVersion, unicode.Version)
	}
	doc, err := os.ReadFile("../../../docs/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Unicode " + unicode.Version; !strings.Contains(string(doc), want) {
		t.Errorf("docs/ABI.md does not say %q (this toolchain's unicode.Version)", want)
	}
}

// TestAppendUpperNoAllocs: with room in dst, no row allocates, ASCII or not
// (in wasm an allocation costs about a microsecond).
func TestAppendUpperNoAllocs(t *testing.T) {
	c := cases.Upper(language.Und)
	dst := make([]byte, 0, 1024)
	for _, s := range []string{"abcdefghijklmnop", "grüße aus köln ß"} {
		if n := testing.AllocsPerRun(100, func() { dst, _ = appendUpper(c, dst[:0], s) }); n != 0 {
			t.Errorf("appendUpper(%q) allocates %.0f times per row", s, n)
		}
	}
}

func BenchmarkAppendUpper(b *testing.B) {
	c := cases.Upper(language.Und)
	for _, s := range []string{"abcdefghijklmnop", "grüße aus köln ß"} {
		b.Run(s, func(b *testing.B) {
			dst := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = appendUpper(c, dst[:0], s)
			}
		})
	}
}
