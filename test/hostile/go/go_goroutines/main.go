// Command go_goroutines is a hostile UDF that starts goroutines that never
// end, without limit, from inside a batch.
package main

import _ "github.com/udfhost/udfhost/guest" // the batch ABI exports

var started int

//go:wasmexport spawn
func spawn(ptr, n uint32) uint64 {
	block := make(chan struct{})
	for {
		go func() { <-block }()
		started++
	}
}

func main() {}
