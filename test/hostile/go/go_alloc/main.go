// Command go_alloc is a hostile UDF that allocates and keeps 16 MiB blocks
// until the Go runtime cannot get more memory: the memory limit and the
// deadline must stop it, not the host's memory.
package main

import _ "github.com/udfhost/udfhost/guest" // the batch ABI exports

var hoard [][]byte

//go:wasmexport hoard
func hoardAll(ptr, n uint32) uint64 {
	for {
		b := make([]byte, 16<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page
		}
		hoard = append(hoard, b)
	}
}

func main() {}
