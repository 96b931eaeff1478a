// Command affine is a udfhost UDF, (BIGINT, BIGINT, BIGINT) -> BIGINT, that
// computes a*b+c (wrapping on overflow), written two ways:
//
//   - affine: vectorised, one call per batch over whole columns
//     (guest.VecInt64x3) — the fast form for arithmetic;
//   - affine_rows: one call per row (guest.MapInt64x3) — the simple form,
//     with per-row errors available.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o affine.wasm ./examples/go/affine
package main

import "github.com/udfhost/udfhost/guest"

//go:wasmexport affine
func affine(ptr, n uint32) uint64 {
	return guest.VecInt64x3(ptr, n, func(a, b, c, out []int64) error {
		for i := range out {
			out[i] = a[i]*b[i] + c[i]
		}
		return nil
	})
}

//go:wasmexport affine_rows
func affineRows(ptr, n uint32) uint64 {
	return guest.MapInt64x3(ptr, n, func(a, b, c int64) (int64, error) {
		return a*b + c, nil
	})
}

func main() {}
