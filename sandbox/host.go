package sandbox

import (
	"fmt"
	"os"

	"github.com/udfhost/udfhost/internal/cgroup"
	"github.com/udfhost/udfhost/sandbox/internal/jail"
)

// Host is what a host process sets up once for all its workers: the pool
// of per-worker ids and the parent cgroup. Close it after the workers.
type Host struct {
	IDs     *IDPool
	Cgroups *cgroup.Manager // nil when the host has no usable cgroups
	// CgroupErr says why Cgroups is nil.
	CgroupErr error
}

// NewHost prepares worker isolation for this process. Without root no
// ids or cgroups are set up, and workers report those layers inactive
// (strict mode then refuses them).
func NewHost() (*Host, error) {
	h := &Host{}
	if !canJail() {
		h.CgroupErr = fmt.Errorf("host is not root")
		return h, nil
	}
	ids, err := NewIDPool(DefaultIDBase, 1<<16)
	if err != nil {
		return nil, err
	}
	h.IDs = ids
	h.Cgroups, h.CgroupErr = cgroup.New(fmt.Sprintf("udfhost-%d", os.Getpid()))
	return h, nil
}

// Config returns base with the host's ids and cgroups filled in.
func (h *Host) Config(base Config) Config {
	base.IDs, base.Cgroups = h.IDs, h.Cgroups
	return base
}

// Close removes the parent cgroup (its workers must be gone).
func (h *Host) Close() error {
	if h.Cgroups != nil {
		return h.Cgroups.Close()
	}
	return nil
}

// PodLimits are the cgroup limits of a worker running instances of a
// module with the given wasm memory limit: the guests' memories plus what
// the runtime, compiled code and the cache copy need.
//
// Guest memory is counted once: linear memories are reserved at their
// maximum and never copied to grow (the worker's mmapAllocator), so
// instances × limit is all they can ever take.
func PodLimits(memoryLimitPages uint32, instances int) cgroup.Limits {
	return cgroup.Limits{
		MemoryBytes: guestMemory(memoryLimitPages, instances) + runtimeOverhead,
		Pids:        256, // Go's threads (GOMAXPROCS, sysmon, blocked syscalls); no processes can be made anyway
		CPUQuota:    float64(max(instances, 1)),
	}
}

// runtimeOverhead is a worker's memory besides its guests' linear
// memories: the Go runtime and heap (frames, batches in and out), compiled
// code and the compilation cache copy.
const runtimeOverhead = 256 << 20

// codeReserve is the part of runtimeOverhead outside the Go heap: compiled
// code, thread stacks, the cache copy in the worker's tmpfs.
const codeReserve = 64 << 20

// guestMemory is the most the linear memories of a worker's instances
// can hold.
func guestMemory(memoryLimitPages uint32, instances int) int64 {
	return int64(memoryLimitPages) * 65536 * int64(max(instances, 1))
}

// goMemoryLimit is the Go memory limit of a worker under cfg: what its
// cgroup leaves once its guests' memories and compiled code are counted,
// or 0 (none) without a cgroup limit or when too little would be left to
// be a useful target.
func goMemoryLimit(cfg Config) int64 {
	if cfg.Cgroups == nil || cfg.compileOnly {
		return 0
	}
	l := cgroupLimits(cfg).MemoryBytes - guestMemory(cfg.MemoryLimitPages, cfg.MaxInstances) - codeReserve
	if l < 32<<20 {
		return 0
	}
	return l
}

// SeccompProfileHash identifies the seccomp allowlist workers run under;
// serve audits it with the layers it measured.
func SeccompProfileHash() string { return jail.SeccompProfileHash() }
