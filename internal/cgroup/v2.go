package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup2"
)

const (
	v2Mount = "/sys/fs/cgroup"
	// hostLeaf is where delegate moves the processes of the host's cgroup.
	hostLeaf = "host"
)

// newV2 sets up parent below the calling process's cgroup in the unified
// hierarchy at mount, using the controllers of want that are available.
func newV2(mount, parent string, want []string) (*Manager, error) {
	if parent == hostLeaf {
		return nil, fmt.Errorf("cgroup: invalid parent name %q: reserved", parent)
	}
	own, err := cgroup2.NestedGroupPath("")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// An earlier host in the same cgroup may have moved us into the leaf.
	if path.Base(own) == hostLeaf {
		own = path.Dir(own)
	}
	base := filepath.Join(mount, own)
	b, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	m := &Manager{mode: "v2", v2: true, dirs: map[string]string{}}
	for _, c := range want {
		if slices.Contains(strings.Fields(string(b)), c) {
			m.ctrls = append(m.ctrls, c)
		}
	}
	if len(m.ctrls) == 0 {
		return nil, fmt.Errorf("%w: none of %v in %s", ErrUnavailable, want, base)
	}
	if err := delegate(base, m.ctrls); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	dir := filepath.Join(base, parent)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	for _, c := range m.ctrls {
		m.dirs[c] = dir
	}
	removeEmptyChildren(dir)
	if err := enable(dir, m.ctrls); err != nil {
		m.Close()
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	swap := exists(filepath.Join(dir, "memory.swap.max"))
	oomGroup := exists(filepath.Join(dir, "memory.oom.group"))
	group := path.Join(own, parent)
	m.limit = func(name string, l Limits) (func(int) error, func(Limits) error, error) {
		cg, err := cgroup2.Load(path.Join(group, name), cgroup2.WithMountpoint(mount))
		if err != nil {
			return nil, nil, err
		}
		update := func(l Limits) error { return cg.Update(v2Resources(l, m.ctrls, swap, oomGroup)) }
		if err := update(l); err != nil {
			return nil, nil, err
		}
		return func(pid int) error { return cg.AddProc(uint64(pid)) }, update, nil
	}
	return m, nil
}

// delegate enables ctrls for the children of dir. The kernel refuses that
// (EBUSY) while a non-root cgroup holds processes, so those, normally just
// this host, are first moved into the leaf dir/host.
func delegate(dir string, ctrls []string) error {
	err := enable(dir, ctrls)
	if !errors.Is(err, syscall.EBUSY) {
		return err
	}
	leaf := filepath.Join(dir, hostLeaf)
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	// Repeat: processes may fork while being moved.
	for range 10 {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			return err
		}
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(p), 0)
			if err != nil && !errors.Is(err, syscall.ESRCH) && !errors.Is(err, syscall.EINVAL) {
				return fmt.Errorf("move pid %s to %s: %w", p, leaf, err)
			}
		}
	}
	return enable(dir, ctrls)
}

// enable adds the ctrls not yet in dir's cgroup.subtree_control.
func enable(dir string, ctrls []string) error {
	file := filepath.Join(dir, "cgroup.subtree_control")
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var add []string
	for _, c := range ctrls {
		if !slices.Contains(strings.Fields(string(b)), c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := os.WriteFile(file, []byte(strings.Join(add, " ")), 0); err != nil {
		return fmt.Errorf("enable %v in %s: %w", add, dir, err)
	}
	return nil
}

func v2Resources(l Limits, ctrls []string, swap, oomGroup bool) *cgroup2.Resources {
	r := &cgroup2.Resources{}
	if l.MemoryBytes > 0 && slices.Contains(ctrls, "memory") {
		r.Memory = &cgroup2.Memory{Max: &l.MemoryBytes}
		if swap {
			// Unlike v1 memsw, memory.swap.max limits swap alone.
			var zero int64
			r.Memory.Swap = &zero
		}
		if oomGroup {
			// Kill the whole worker rather than leave it half alive.
			yes := true
			r.Memory.OOMGroup = &yes
		}
	}
	if l.Pids > 0 && slices.Contains(ctrls, "pids") {
		r.Pids = &cgroup2.Pids{Max: l.Pids}
	}
	if l.CPUQuota > 0 && slices.Contains(ctrls, "cpu") {
		q, p := l.cpuQuotaUs(), uint64(cpuPeriod)
		r.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(&q, &p)}
	}
	return r
}

func exists(file string) bool {
	_, err := os.Stat(file)
	return err == nil
}
