// Command go_net is a hostile UDF that tries to accept connections on an
// inherited socket (fd 3) through Go's net package, which needs WASI's
// sock_* functions: the upload must be refused.
package main

import (
	"net"
	"os"

	_ "github.com/udfhost/udfhost/guest" // the batch ABI exports
)

//go:wasmexport serve
func serve(ptr, n uint32) uint64 {
	l, err := net.FileListener(os.NewFile(3, "inherited"))
	if err != nil {
		return 0
	}
	c, err := l.Accept()
	if err != nil {
		return 0
	}
	c.Write([]byte("hello from inside the sandbox\n"))
	c.Close()
	return 0
}

func main() {}
