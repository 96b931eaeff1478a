// Package cgroup puts each sandbox worker process into its own cgroup with
// memory, pids and cpu limits, on cgroup v1, hybrid and v2 hosts.
//
// A Manager owns one parent cgroup, created under the cgroup the calling
// process already lives in (so workers stay inside any limits imposed on the
// host itself); each worker gets a child Group of that parent.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
)

// ErrUnavailable is returned by New when none of the memory, pids and cpu
// controllers can be used (not root, cgroupfs missing or read-only, ...).
var ErrUnavailable = errors.New("cgroup: no usable memory, pids or cpu controller")

// wanted lists the only controllers this package touches, in Controllers order.
var wanted = []string{"memory", "pids", "cpu"}

// cpuPeriod is the CFS period in microseconds (100ms, the kernel default).
const cpuPeriod = 100000

// Limits for one worker; zero means "no limit" for that resource.
type Limits struct {
	MemoryBytes int64   // hard limit incl. page cache; swap is capped so it can't extend it
	Pids        int64   // max tasks (threads count) in the group
	CPUQuota    float64 // cores, e.g. 1.0 = one core per 100ms period
}

// Update changes the group's limits, e.g. when a worker started ahead of
// need (already in its group: moving a process between cgroups is the
// slow part) is given its pod. Zero fields leave that limit as it is.
func (g *Group) Update(l Limits) error {
	if err := l.validate(); err != nil {
		return err
	}
	if err := g.update(l); err != nil {
		return fmt.Errorf("cgroup: update limits of %s: %w", g.name, err)
	}
	return nil
}

// Events counts what the kernel says hit a limit since the group was created.
type Events struct {
	OOMKills int64 // processes killed by the OOM killer
	PidsMax  int64 // forks/clones refused because of the pids limit
}

// Manager owns one parent cgroup under which each worker gets a child group.
// Its methods are safe for concurrent use.
type Manager struct {
	mode  string
	ctrls []string          // usable controllers, in wanted order
	dirs  map[string]string // controller -> parent directory (all equal on v2)
	v2    bool
	// limit writes l into the freshly made group name and returns how to
	// add a process to it and how to change its limits later.
	limit func(name string, l Limits) (add func(pid int) error, update func(Limits) error, err error)
}

// Group is the cgroup of one worker.
type Group struct {
	name   string
	dirs   map[string]string // controller -> group directory
	v2     bool
	add    func(pid int) error
	update func(Limits) error
}

// New creates (or reuses, after a crash) the parent cgroup parent below the
// calling process's own cgroup and detects which of memory, pids and cpu are
// usable. On v2, if the calling process's cgroup holds processes and does not
// yet delegate the controllers, those processes are moved into a leaf child
// named "host" first, since the kernel forbids controllers in a non-root
// cgroup with processes.
func New(parent string) (*Manager, error) {
	if err := validName(parent); err != nil {
		return nil, err
	}
	switch cgroups.Mode() {
	case cgroups.Legacy:
		return newV1(parent, "v1")
	case cgroups.Hybrid:
		// A controller is bound to one hierarchy; on hybrid hosts memory, pids
		// and cpu are in practice the v1 ones.
		return newV1(parent, "hybrid")
	case cgroups.Unified:
		return newV2(v2Mount, parent, wanted)
	}
	return nil, fmt.Errorf("%w: cgroupfs not mounted at /sys/fs/cgroup", ErrUnavailable)
}

// Mode reports the host's cgroup layout: "v1", "hybrid" or "v2".
func (m *Manager) Mode() string { return m.mode }

// Controllers lists the usable controllers, e.g. ["memory", "pids", "cpu"].
// Limits for controllers not listed are not enforced.
func (m *Manager) Controllers() []string { return slices.Clone(m.ctrls) }

// Create makes a fresh child group called name with limits l. It fails if a
// group of that name exists already. Limits for controllers missing from
// Controllers are ignored.
func (m *Manager) Create(name string, l Limits) (*Group, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	g := &Group{name: name, dirs: map[string]string{}, v2: m.v2}
	for c, d := range m.dirs {
		g.dirs[c] = filepath.Join(d, name)
	}
	// Claiming every directory with mkdir (not MkdirAll) guarantees a fresh
	// group: no stale processes and event counters from an earlier worker.
	var made []string
	undo := func() {
		for _, d := range made {
			removeDir(d, false)
		}
	}
	for _, d := range distinct(g.dirs) {
		if err := os.Mkdir(d, 0o755); err != nil {
			undo()
			return nil, fmt.Errorf("cgroup: create %s: %w", name, err)
		}
		made = append(made, d)
	}
	var err error
	if g.add, g.update, err = m.limit(name, l); err != nil {
		undo()
		return nil, fmt.Errorf("cgroup: set limits on %s: %w", name, err)
	}
	return g, nil
}

// Close removes the parent cgroup and any empty groups left in it. It fails
// if a group still holds processes.
func (m *Manager) Close() error {
	var errs []error
	for _, d := range distinct(m.dirs) {
		removeEmptyChildren(d)
		if err := removeDir(d, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Add moves process pid, with all its threads, into the group. Call it
// before the process does real work: on v1, memory it already uses stays
// charged to its old cgroup.
func (g *Group) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroup: add pid %d to %s: invalid pid", pid, g.name)
	}
	if err := g.add(pid); err != nil {
		return fmt.Errorf("cgroup: add pid %d to %s: %w", pid, g.name, err)
	}
	return nil
}

// Events reports the limits the kernel enforced on the group so far.
// Counters of unusable controllers stay zero.
func (g *Group) Events() Events {
	var e Events
	if d, ok := g.dirs["memory"]; ok {
		if g.v2 {
			e.OOMKills = readKey(filepath.Join(d, "memory.events"), "oom_kill")
		} else {
			e.OOMKills = readKey(filepath.Join(d, "memory.oom_control"), "oom_kill")
		}
	}
	if d, ok := g.dirs["pids"]; ok {
		e.PidsMax = readKey(filepath.Join(d, "pids.events"), "max")
	}
	return e
}

// MemoryPeak is the most memory the group's processes were charged at
// once since it was created, in bytes (memory.peak on v2,
// memory.max_usage_in_bytes on v1); 0 without a usable memory controller
// or on a kernel that does not track it.
func (g *Group) MemoryPeak() int64 {
	d, ok := g.dirs["memory"]
	if !ok {
		return 0
	}
	file := filepath.Join(d, "memory.max_usage_in_bytes")
	if g.v2 {
		file = filepath.Join(d, "memory.peak")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// Delete SIGKILLs any process still in the group and removes it. The
// caller should still reap its own child; zombies don't keep a group busy.
func (g *Group) Delete() error {
	var errs []error
	for _, d := range distinct(g.dirs) {
		if err := removeDir(d, true); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cgroup: delete %s: %w", g.name, err)
	}
	return nil
}

func (l Limits) validate() error {
	switch {
	case l.MemoryBytes < 0, l.Pids < 0:
		return fmt.Errorf("cgroup: invalid limits %+v: negative", l)
	case math.IsNaN(l.CPUQuota) || math.IsInf(l.CPUQuota, 0) || l.CPUQuota < 0:
		return fmt.Errorf("cgroup: invalid cpu quota %v", l.CPUQuota)
	case l.CPUQuota > 0 && l.cpuQuotaUs() < 1000:
		// The kernel refuses CFS quotas under 1ms.
		return fmt.Errorf("cgroup: cpu quota %v cores is under 1ms per 100ms period", l.CPUQuota)
	}
	return nil
}

func (l Limits) cpuQuotaUs() int64 { return int64(l.CPUQuota * cpuPeriod) }

// validName keeps pod identities from naming anything outside the parent or
// clashing with cgroupfs syntax: a path element of [A-Za-z0-9._@:+=-].
func validName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return fmt.Errorf("cgroup: invalid name %q", name)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._@:+=-", r)) {
			return fmt.Errorf("cgroup: invalid name %q: character %q not allowed", name, r)
		}
	}
	return nil
}

// removeDir removes cgroup directory dir. With kill set it first kills the
// group's processes and retries briefly on EBUSY: killed tasks leave the
// group asynchronously, and forks racing with the kill need killing again.
func removeDir(dir string, kill bool) error {
	delay := time.Millisecond
	deadline := time.Now().Add(2 * time.Second)
	for {
		if kill {
			killAll(dir)
		}
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !kill || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

func killAll(dir string) {
	// cgroup.kill (v2, Linux 5.14+) kills atomically, without pid reuse races.
	if os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0) == nil {
		return
	}
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeEmptyChildren removes the child groups of dir that hold no
// processes, such as groups left by a crashed earlier host.
func removeEmptyChildren(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			syscall.Rmdir(filepath.Join(dir, e.Name()))
		}
	}
}

// readKey returns the value of key in a flat keyed file such as
// memory.events ("oom_kill 3"), or 0 if it can't be read.
func readKey(file, key string) int64 {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// distinct returns the distinct directories in dirs (one per v1 hierarchy,
// a single one on v2), sorted.
func distinct(dirs map[string]string) []string {
	var out []string
	for _, d := range dirs {
		out = append(out, d)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
