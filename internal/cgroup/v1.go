package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// newV1 sets up parent in each v1 hierarchy of memory, pids and cpu. The
// library's default hierarchy holds every mounted controller, and one odd
// controller (read-only devices, net_cls, rdma, ...) would fail creation,
// so each wanted controller is tried on its own and only those that work
// are kept.
func newV1(parent, mode string) (*Manager, error) {
	all, err := cgroup1.Default()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	path := cgroup1.NestedPath(parent)
	m := &Manager{mode: mode, dirs: map[string]string{}}
	var (
		subs []cgroup1.Subsystem
		errs []error
	)
	for _, c := range wanted {
		for _, s := range all {
			if string(s.Name()) != c {
				continue
			}
			dir, err := v1Parent(path, s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c, err))
				continue
			}
			removeEmptyChildren(dir)
			m.ctrls = append(m.ctrls, c)
			m.dirs[c] = dir
			subs = append(subs, s)
		}
	}
	if len(subs) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
	}
	cg, err := cgroup1.Load(path, cgroup1.WithHierarchy(func() ([]cgroup1.Subsystem, error) { return subs, nil }))
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("cgroup: load %s: %w", parent, err)
	}
	// memory.memsw.* exists only with swap accounting; without it there is
	// nothing to cap.
	_, err = os.Stat(filepath.Join(m.dirs["memory"], "memory.memsw.limit_in_bytes"))
	swap := err == nil
	m.limit = func(name string, l Limits) (func(int) error, func(Limits) error, error) {
		child, err := cg.New(name, v1Resources(l, swap))
		if err != nil {
			return nil, nil, err
		}
		return func(pid int) error { return child.AddProc(uint64(pid)) },
			func(l Limits) error {
				// v1 keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes
				// at every write, and the library writes memory first: to
				// raise both, raise memsw alone first (when lowering, that
				// write fails harmlessly and the full update does it).
				if swap && l.MemoryBytes > 0 {
					child.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: &l.MemoryBytes}})
				}
				return child.Update(v1Resources(l, swap))
			}, nil
	}
	return m, nil
}

// v1Parent creates the parent group in the hierarchy of s alone and returns
// its directory.
func v1Parent(path cgroup1.Path, s cgroup1.Subsystem) (string, error) {
	one := func() ([]cgroup1.Subsystem, error) { return []cgroup1.Subsystem{s}, nil }
	cg, err := cgroup1.New(path, &specs.LinuxResources{}, cgroup1.WithHierarchy(one))
	if err != nil {
		return "", err
	}
	// New skips, without error, a controller the process has no cgroup in.
	if len(cg.Subsystems()) == 0 {
		return "", cgroup1.ErrControllerNotActive
	}
	p, err := path(s.Name())
	if err != nil {
		return "", err
	}
	pather, ok := s.(interface{ Path(string) string })
	if !ok {
		return "", fmt.Errorf("subsystem %s has no directory", s.Name())
	}
	return pather.Path(p), nil
}

func v1Resources(l Limits, swap bool) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if l.MemoryBytes > 0 {
		r.Memory = &specs.LinuxMemory{Limit: &l.MemoryBytes}
		if swap {
			// memsw limits memory+swap, so equal to the memory limit means
			// swap can't extend it.
			r.Memory.Swap = &l.MemoryBytes
		}
	}
	if l.Pids > 0 {
		r.Pids = &specs.LinuxPids{Limit: &l.Pids}
	}
	if l.CPUQuota > 0 {
		q, p := l.cpuQuotaUs(), uint64(cpuPeriod)
		r.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	return r
}
