// Command upper is a udfhost UDF, VARCHAR -> VARCHAR, that upper-cases its
// argument with Unicode's full case mapping (golang.org/x/text/cases), as
// SQL engines do: "straße" becomes "STRASSE" (strings.ToUpper, one rune to
// one rune, gives "STRAßE"). A value that is not valid UTF-8 makes its row
// fail with an error (the host refuses such VARCHAR input anyway).
//
// It appends into the SDK's output buffer (guest.MapStringAppend) instead of
// returning a new string: in wasm, Go's allocator costs about a microsecond
// per call, several times the work of upper-casing a short string. ASCII
// strings, the common case, take a byte loop; others go through the
// Caser's Transform straight into the output buffer. guest.MapString is the
// simpler form when that does not matter.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm ./examples/go/upper
package main

import (
	"errors"
	"slices"
	"unicode/utf8"
	"unsafe"

	"github.com/udfhost/udfhost/guest"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/transform"
)

var errInvalidUTF8 = errors.New("upper: argument is not valid UTF-8")

// upperCaser is reused for every row (a guest instance runs one batch at a
// time); Transform resets it.
var upperCaser = cases.Upper(language.Und)

//go:wasmexport upper
func upper(ptr, n uint32) uint64 {
	return guest.MapStringAppend(ptr, n, func(dst []byte, s string) ([]byte, error) {
		return appendUpper(upperCaser, dst, s)
	})
}

// appendUpper appends the full upper-case mapping of s to dst.
func appendUpper(c cases.Caser, dst []byte, s string) ([]byte, error) {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) { // ASCII: the mapping is a-z to A-Z
		for j := 0; j < len(s); j++ {
			b := s[j]
			if 'a' <= b && b <= 'z' {
				b -= 'a' - 'A'
			}
			dst = append(dst, b)
		}
		return dst, nil
	}
	if !utf8.ValidString(s[i:]) {
		return dst, errInvalidUTF8
	}
	// Transform reads src without keeping or changing it, so s's bytes are
	// handed over without a copy.
	src := unsafe.Slice(unsafe.StringData(s), len(s))
	c.Reset()
	for {
		nDst, nSrc, err := c.Transform(dst[len(dst):cap(dst)], src, true)
		dst, src = dst[:len(dst)+nDst], src[nSrc:]
		if err != transform.ErrShortDst {
			return dst, err
		}
		// Full case mapping grows a string at most threefold per rune.
		dst = slices.Grow(dst, 3*len(src)+utf8.UTFMax)
	}
}

func main() {}
