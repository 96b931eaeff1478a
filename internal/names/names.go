// Package names defines the grammar of every name the API takes —
// functions, environments, compute pools, artifact names, artifact and
// upload ids, wasm exports — and checks it before anything else happens,
// so a hostile name never reaches a lookup, a lock, a file path, a worker
// or an audit record as anything but a quoted, truncated refusal.
package names

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every refused name.
var ErrInvalid = errors.New("invalid name")

// Kind is one kind of name and its grammar.
type Kind struct {
	// What names the field in messages, e.g. "function name".
	What string
	// Rule is the grammar as shown to callers.
	Rule string
	re   *regexp.Regexp
	// max bounds the length in bytes; for kinds with a pattern the
	// pattern bounds it too.
	max int
	// export: any UTF-8 without control characters (wasm export names
	// may be any UTF-8 string); re is nil.
	export bool
}

// The kinds of names, each with its grammar. Function names are SQL
// identifiers; environment and pool names are the lower-case names of
// file paths and SPIFFE IDs; an artifact name is a display name, a file's
// base name; ids are what the server hands out.
var (
	Function     = kind("function name", `^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	Env          = kind("environment", `^[a-z0-9][a-z0-9-]{0,62}$`)
	Pool         = kind("compute pool", `^[a-z0-9][a-z0-9-]{0,62}$`)
	ArtifactName = kind("artifact name", `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	ArtifactID   = kind("artifact id", `^art-[0-9a-f]{16}$`)
	UploadID     = kind("upload id", `^up-[0-9a-f]{16}$`)
	Export       = Kind{What: "export", Rule: "must be 1 to 256 bytes of UTF-8 without control characters", max: 256, export: true}
)

func kind(what, pattern string) Kind {
	return Kind{What: what, Rule: "must match " + pattern, re: regexp.MustCompile(pattern)}
}

// Error is a refused name. Its message never holds more than a short,
// quoted prefix of the name.
type Error struct {
	Kind  Kind
	Value string
}

func (e *Error) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: required; %s", e.Kind.What, e.Kind.Rule)
	}
	return fmt.Sprintf("%s: %s, got %s", e.Kind.What, e.Kind.Rule, Quote(e.Value))
}

func (e *Error) Unwrap() error { return ErrInvalid }

// Check returns nil if s is a valid name of kind k, else an *Error.
func (k Kind) Check(s string) error {
	if k.valid(s) {
		return nil
	}
	return &Error{Kind: k, Value: s}
}

func (k Kind) valid(s string) bool {
	if !k.export {
		// The patterns bound the length; refuse long input before the
		// regexp reads it.
		return len(s) <= 128 && k.re.MatchString(s)
	}
	if s == "" || len(s) > k.max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// quoteMax is how many bytes of a refused name a message shows.
const quoteMax = 40

// Quote renders s for a message or an audit record: Go-quoted (control
// characters and invalid UTF-8 escaped), at most quoteMax bytes of it
// (cut at a rune boundary) and, when cut, followed by its length.
func Quote(s string) string {
	if len(s) <= quoteMax {
		return strconv.Quote(s)
	}
	cut := quoteMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}
