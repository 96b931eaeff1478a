package sandbox

import (
	"fmt"
	"os"

	"github.com/udfhost/udfhost/internal/cgroup"
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
func PodLimits(memoryLimitPages uint32, instances int) cgroup.Limits {
	const runtimeOverhead = 256 << 20
	return cgroup.Limits{
		MemoryBytes: int64(memoryLimitPages)*65536*int64(max(instances, 1)) + runtimeOverhead,
		Pids:        256, // Go's threads (GOMAXPROCS, sysmon, blocked syscalls); no processes can be made anyway
		CPUQuota:    float64(max(instances, 1)),
	}
}
