// Command upper is a udfhost UDF, VARCHAR -> VARCHAR, that upper-cases its
// argument as strings.ToUpper does. A value that is not valid UTF-8 makes
// its row fail with an error.
//
// It appends into the SDK's output buffer (guest.MapStringAppend) instead of
// returning strings.ToUpper's new string: in wasm, Go's allocator costs
// about a microsecond per call, several times the work of upper-casing a
// short string. guest.MapString is the simpler form when that does not
// matter.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm ./examples/go/upper
package main

import (
	"errors"
	"unicode"
	"unicode/utf8"

	"github.com/udfhost/udfhost/guest"
)

var errInvalidUTF8 = errors.New("upper: argument is not valid UTF-8")

//go:wasmexport upper
func upper(ptr, n uint32) uint64 {
	return guest.MapStringAppend(ptr, n, func(dst []byte, s string) ([]byte, error) {
		for i := 0; i < len(s); {
			c := s[i]
			if c < utf8.RuneSelf { // ASCII fast path
				if 'a' <= c && c <= 'z' {
					c -= 'a' - 'A'
				}
				dst = append(dst, c)
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return dst, errInvalidUTF8
			}
			dst = utf8.AppendRune(dst, unicode.ToUpper(r))
			i += size
		}
		return dst, nil
	})
}

func main() {}
