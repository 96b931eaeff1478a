package wire

import (
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkSocketWrite is the cost of one write to the worker socket by
// size, with a reader draining the other end: what a shared-memory
// transport would save per batch (docs/ARCHITECTURE.md). BenchmarkCopy is
// the memcpy that would replace it.
func BenchmarkSocketWrite(b *testing.B) {
	for _, n := range []int{64, 8 << 10, 24 << 10} {
		b.Run(fmt.Sprintf("bytes=%d", n), func(b *testing.B) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			w, _ := net.FileConn(os.NewFile(uintptr(fds[0]), "w"))
			r, _ := net.FileConn(os.NewFile(uintptr(fds[1]), "r"))
			defer w.Close()
			defer r.Close()
			go io.Copy(io.Discard, r)
			buf := make([]byte, n)
			b.SetBytes(int64(n))
			for i := 0; i < b.N; i++ {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCopy24K(b *testing.B) {
	src, dst := make([]byte, 24<<10), make([]byte, 24<<10)
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		copy(dst, src)
	}
}
