// Package names defines the grammar of every name the API takes —
// functions (and references to them, which may be three-part names
// org.env.function), environments, compute pools, artifact names,
// artifact and upload ids, wasm exports — and checks it before anything else happens,
// so a hostile name never reaches a lookup, a lock, a file path, a worker
// or an audit record as anything but a quoted, truncated refusal.
package names

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every refused name.
var ErrInvalid = errors.New("invalid name")

// Kind is one kind of name and its grammar.
type Kind struct {
	// What names the field in messages, e.g. "function name".
	What string
	// Rule is the grammar as shown to callers: a regular expression for
	// the kinds with a pattern, which Check matches without a regexp (it
	// runs on every call's function and environment name).
	Rule string
	// A pattern kind is prefix, then one byte of first (nil: of rest),
	// then minRest to maxRest bytes of rest.
	prefix           string
	first, rest      *byteSet
	minRest, maxRest int
	// ref: a reference to a function, Function's grammar alone or
	// after "org.env." (both of Env's grammar).
	ref bool
	// export: any UTF-8 without control characters (wasm export names
	// may be any UTF-8 string), at most max bytes.
	export bool
	max    int
}

// The kinds of names, each with its grammar. Function names are SQL
// identifiers; environment and pool names are the lower-case names of
// file paths and SPIFFE IDs; an artifact name is a display name, a file's
// base name; ids are what the server hands out.
var (
	Function     = kind("function name", "A-Za-z_", "A-Za-z0-9_", 127)
	Env          = kind("environment", "a-z0-9", "a-z0-9-", 62)
	Pool         = kind("compute pool", "a-z0-9", "a-z0-9-", 62)
	ArtifactName = kind("artifact name", "A-Za-z0-9", "A-Za-z0-9._-", 127)
	ArtifactID   = id("artifact id", "art-", "0-9a-f", 16)
	UploadID     = id("upload id", "up-", "0-9a-f", 16)
	// FunctionRef is the function field of a call on an existing
	// function (get, delete, invoke): its name, or the three-part name
	// org.env.function. Dots appear in no other name, so a function
	// name has none, and a reference has two or none.
	FunctionRef = Kind{What: "function name", ref: true, Rule: `must match ^(?:[a-z0-9][a-z0-9-]{0,62}\.[a-z0-9][a-z0-9-]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,127}$`}
	Export      = Kind{What: "export", Rule: "must be 1 to 256 bytes of UTF-8 without control characters", max: 256, export: true}
)

// kind is a name of one byte of first and up to maxRest bytes of rest,
// each a character class ("a-z0-9-": ranges and single bytes).
func kind(what, first, rest string, maxRest int) Kind {
	return Kind{What: what, Rule: fmt.Sprintf("must match ^[%s][%s]{0,%d}$", first, rest, maxRest),
		first: newByteSet(first), rest: newByteSet(rest), maxRest: maxRest}
}

// id is prefix and exactly n bytes of class.
func id(what, prefix, class string, n int) Kind {
	return Kind{What: what, Rule: fmt.Sprintf("must match ^%s[%s]{%d}$", prefix, class, n),
		prefix: prefix, rest: newByteSet(class), minRest: n, maxRest: n}
}

// byteSet is a character class of single bytes.
type byteSet [256]bool

// newByteSet parses a class as written between brackets in Rule: ranges
// like a-z and single bytes (a '-' that ends a class is itself).
func newByteSet(class string) *byteSet {
	var s byteSet
	for i := 0; i < len(class); i++ {
		if i+2 < len(class) && class[i+1] == '-' {
			for c := int(class[i]); c <= int(class[i+2]); c++ {
				s[c] = true
			}
			i += 2
			continue
		}
		s[class[i]] = true
	}
	return &s
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
	if k.ref {
		org, env, fn, qualified := SplitFunctionRef(s)
		return Function.valid(fn) && (!qualified || Env.valid(org) && Env.valid(env))
	}
	if k.export {
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
	rest, ok := strings.CutPrefix(s, k.prefix)
	if !ok {
		return false
	}
	if k.first != nil {
		if rest == "" || !k.first[rest[0]] {
			return false
		}
		rest = rest[1:]
	}
	if len(rest) < k.minRest || len(rest) > k.maxRest {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !k.rest[rest[i]] {
			return false
		}
	}
	return true
}

// SplitFunctionRef splits a three-part name org.env.function at its two
// dots (qualified); anything else is a function name alone, returned as
// fn. It does not check the parts: FunctionRef.Check does.
func SplitFunctionRef(s string) (org, env, fn string, qualified bool) {
	org, rest, ok := strings.Cut(s, ".")
	if !ok {
		return "", "", s, false
	}
	env, fn, ok = strings.Cut(rest, ".")
	if !ok || strings.Contains(fn, ".") {
		return "", "", s, false
	}
	return org, env, fn, true
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
