package sandbox

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/udfhost/udfhost/sandbox/internal/jail"
)

// DefaultIDBase is the first host uid/gid handed to workers: far above
// the ids of real users and of systemd's dynamic and container ranges.
const DefaultIDBase = 2_000_000_000

// ErrNoIDs means every id block of the pool is held by a live worker.
var ErrNoIDs = errors.New("no free worker uid: every id block is in use")

// IDPool hands out per-worker host uid/gid blocks (jail.IDsPerWorker ids
// each, which the worker's user namespace maps). The host owns one and
// passes it in Config; blocks come back when their worker exits.
type IDPool struct {
	base, blocks uint32
	mu           sync.Mutex
	used         map[uint32]bool
	next         uint32
}

// NewIDPool serves blocks [base, base+2*blocks).
func NewIDPool(base, blocks uint32) (*IDPool, error) {
	if blocks == 0 || uint64(base)+uint64(blocks)*jail.IDsPerWorker > 1<<32-2 {
		return nil, fmt.Errorf("worker id range %d+%d×%d does not fit in uid_t", base, blocks, jail.IDsPerWorker)
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
			return p.base + b*jail.IDsPerWorker, nil
		}
	}
	return 0, ErrNoIDs
}

func (p *IDPool) put(hostID uint32) {
	p.mu.Lock()
	delete(p.used, (hostID-p.base)/jail.IDsPerWorker)
	p.mu.Unlock()
}

// canJail reports whether this host can start workers in their own
// namespaces (it must be root to map a foreign id block).
func canJail() bool { return os.Geteuid() == 0 }
