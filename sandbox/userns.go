package sandbox

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// A worker in its own user namespace holds two ids, mapped to a block of
// two host ids that belong to that worker alone:
//
//	inside 0 -> host base+2k   only while the worker sets up its mounts
//	inside 1 -> host base+2k+1 the id it runs guest code as, without caps
//
// So a worker that escaped wasm is an unprivileged id inside and outside,
// and no two live workers (no two pods) share a host id.
const (
	innerSetupID = 0
	innerRunID   = 1
	idsPerWorker = 2
)

// DefaultIDBase is the first host uid/gid handed to workers: far above
// the ids of real users and of systemd's dynamic and container ranges.
const DefaultIDBase = 2_000_000_000

// ErrNoIDs means every id block of the pool is held by a live worker.
var ErrNoIDs = errors.New("no free worker uid: every id block is in use")

// IDPool hands out per-worker host uid/gid blocks. The host owns one and
// passes it in Config; blocks come back when their worker exits.
type IDPool struct {
	base, blocks uint32
	mu           sync.Mutex
	used         map[uint32]bool
	next         uint32
}

// NewIDPool serves blocks [base, base+2*blocks).
func NewIDPool(base, blocks uint32) (*IDPool, error) {
	if blocks == 0 || uint64(base)+uint64(blocks)*idsPerWorker > 1<<32-2 {
		return nil, fmt.Errorf("worker id range %d+%d×%d does not fit in uid_t", base, blocks, idsPerWorker)
	}
	return &IDPool{base: base, blocks: blocks, used: map[uint32]bool{}}, nil
}

// get returns the host id the first inner id of a free block maps to.
func (p *IDPool) get() (uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := uint32(0); i < p.blocks; i++ {
		b := (p.next + i) % p.blocks
		if !p.used[b] {
			p.used[b] = true
			p.next = b + 1
			return p.base + b*idsPerWorker, nil
		}
	}
	return 0, ErrNoIDs
}

func (p *IDPool) put(hostID uint32) {
	p.mu.Lock()
	delete(p.used, (hostID-p.base)/idsPerWorker)
	p.mu.Unlock()
}

// userNamespaceAttr adds a user namespace with hostID's block to attr. The
// host's supplementary groups are dropped (setgroups is allowed for that
// one call; the seccomp filter forbids it later).
func userNamespaceAttr(attr *syscall.SysProcAttr, hostID uint32) {
	attr.Cloneflags |= syscall.CLONE_NEWUSER
	attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: innerSetupID, HostID: int(hostID), Size: idsPerWorker}}
	attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: innerSetupID, HostID: int(hostID), Size: idsPerWorker}}
	attr.GidMappingsEnableSetgroups = true
	attr.Credential = &syscall.Credential{Uid: innerSetupID, Gid: innerSetupID, Groups: []uint32{}}
}

// canJail reports whether this host can start workers in their own
// namespaces (it must be root to map a foreign id block).
func canJail() bool { return os.Geteuid() == 0 }
