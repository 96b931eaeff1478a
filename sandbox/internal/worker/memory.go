package worker

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/tetratelabs/wazero/experimental"
)

// mmapAllocator backs each linear memory with one private anonymous
// mapping of its maximum size, reserved once (MAP_NORESERVE: address
// space, not memory) and never moved. The kernel backs a page, and the
// worker's cgroup is charged for it, only when the guest touches it, and
// munmap gives it all back at once when the instance is closed.
//
// wazero's default, a Go slice grown by copying, needs the old and the
// new memory at once and leaves the old one to the garbage collector:
// two instances growing to a 256 MiB limit peaked well over the 768 MiB
// their worker's cgroup allows and were killed, although each stayed
// within its limit. With this allocator a worker's guest memory is at
// most instances × limit, which the host's sandbox.PodLimits provides
// for, and it is outside the Go heap (the worker's Go memory limit does
// not count it).
type mmapAllocator struct{}

func (mmapAllocator) Allocate(_, max uint64) experimental.LinearMemory {
	if max == 0 {
		return &mmapMemory{}
	}
	buf, err := unix.Mmap(-1, 0, int(max), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		// Out of address space: Reallocate then refuses even the initial
		// size, and the instantiation fails as it would if make() did.
		return &mmapMemory{}
	}
	return &mmapMemory{buf: buf}
}

// mmapMemory is one reserved mapping; its length is what the guest has.
type mmapMemory struct{ buf []byte }

// Reallocate returns the first size bytes of the mapping, nil (memory.grow
// answers -1) past its end. wazero never asks past the memory's maximum.
func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	if m.buf == nil {
		return []byte{}
	}
	return m.buf[:size:size]
}

// Free unmaps the memory. wazero calls it when the module is closed, on
// the goroutine that ran it, once guest code can no longer touch it.
func (m *mmapMemory) Free() {
	if m.buf != nil {
		unix.Munmap(m.buf)
		m.buf = nil
	}
}

// withMmapMemory has modules instantiated under ctx use mmapAllocator.
func withMmapMemory(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, mmapAllocator{})
}
