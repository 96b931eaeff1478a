// Command upper is a udfhost UDF, VARCHAR -> VARCHAR, that upper-cases its
// argument. A value that is not valid UTF-8 makes its row fail with an error.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm ./examples/go/upper
package main

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/udfhost/udfhost/guest"
)

var errInvalidUTF8 = errors.New("upper: argument is not valid UTF-8")

//go:wasmexport upper
func upper(ptr, n uint32) uint64 {
	return guest.MapString(ptr, n, func(s string) (string, error) {
		if !utf8.ValidString(s) {
			return "", errInvalidUTF8
		}
		return strings.ToUpper(s), nil
	})
}

func main() {}
