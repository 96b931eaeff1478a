// Command sha256hex is a udfhost UDF, BYTES -> VARCHAR, that returns the
// lower-case hex SHA-256 digest of its argument. It shows the batch-level
// API, guest.Call, for shapes without a Map helper.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o sha256hex.wasm ./examples/go/sha256hex
package main

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/udfhost/udfhost/guest"
)

//go:wasmexport sha256hex
func sha256hex(ptr, n uint32) uint64 {
	return guest.Call(ptr, n, guest.Varchar, func(in *guest.Batch, out *guest.Result) error {
		if err := in.CheckArgs(guest.Bytes); err != nil {
			return err // every row fails with this message
		}
		col := in.Col(0)
		var buf [2 * sha256.Size]byte
		for row := range in.Rows() {
			if col.IsNull(row) {
				continue // rows left alone are NULL
			}
			sum := sha256.Sum256(col.Bytes(row))
			hex.Encode(buf[:], sum[:])
			out.SetBytes(row, buf[:])
		}
		return nil
	})
}

func main() {}
