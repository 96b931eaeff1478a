// Command affine is a udfhost UDF, (BIGINT, BIGINT, BIGINT) -> BIGINT, that
// computes a*b+c (wrapping on overflow).
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o affine.wasm ./examples/go/affine
package main

import "github.com/udfhost/udfhost/guest"

//go:wasmexport affine
func affine(ptr, n uint32) uint64 {
	return guest.MapInt64x3(ptr, n, func(a, b, c int64) (int64, error) {
		return a*b + c, nil
	})
}

func main() {}
