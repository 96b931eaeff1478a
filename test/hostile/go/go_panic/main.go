// Command go_panic is a hostile UDF: its export panics outside the SDK's
// recovery, so the Go runtime aborts the whole guest mid-batch.
package main

import _ "github.com/udfhost/udfhost/guest" // the batch ABI exports

//go:wasmexport boom
func boom(ptr, n uint32) uint64 {
	panic("go_panic: deliberate panic outside the SDK")
}

func main() {}
