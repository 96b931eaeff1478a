package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/containerd/cgroups/v3"
)

// allocEnv makes the test binary, re-executed, wait for a line on stdin and
// then touch that many MiB of memory.
const allocEnv = "UDFHOST_CGROUP_TEST_ALLOC_MIB"

func TestMain(m *testing.M) {
	if v := os.Getenv(allocEnv); v != "" {
		n, _ := strconv.Atoi(v)
		bufio.NewReader(os.Stdin).ReadString('\n')
		b := make([]byte, n<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		runtime.KeepAlive(b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var seq atomic.Int64

func parentName() string { return fmt.Sprintf("udfhost-test-%d-%d", os.Getpid(), seq.Add(1)) }

func requireRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("cgroup tests need root")
	}
}

// newManager returns a Manager with a parent of its own that is closed, and
// checked to be gone, when the test ends. It skips where cgroups are unusable.
func newManager(t testing.TB) *Manager {
	requireRoot(t)
	m, err := New(parentName())
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("cgroups unavailable: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, d := range m.dirs {
			if exists(d) {
				t.Errorf("parent %s left after Close", d)
			}
		}
	})
	return m
}

func needController(t *testing.T, m *Manager, c string) {
	if !slices.Contains(m.Controllers(), c) {
		t.Skipf("%s controller not usable (have %v)", c, m.Controllers())
	}
}

// startIn starts cmd, which must first read a line from stdin, moves it into
// g and only then lets it go on, so all its work is accounted to g.
func startIn(t *testing.T, g *Group, cmd *exec.Cmd) *bytes.Buffer {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	stdin.Close()
	return &stderr
}

func TestMemoryLimit(t *testing.T) {
	m := newManager(t)
	needController(t, m, "memory")
	for _, tc := range []struct {
		name       string
		allocMiB   int
		wantKilled bool
	}{
		{"within limit", 4, false},
		{"over limit", 128, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := m.Create("mem", Limits{MemoryBytes: 32 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Delete()
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), allocEnv+"="+strconv.Itoa(tc.allocMiB))
			startIn(t, g, cmd)
			err = cmd.Wait()
			var ee *exec.ExitError
			killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
			if killed != tc.wantKilled {
				t.Fatalf("Wait = %v, want SIGKILL: %v", err, tc.wantKilled)
			}
			if !killed && err != nil {
				t.Fatal(err)
			}
			if ooms := g.Events().OOMKills; (ooms >= 1) != tc.wantKilled {
				t.Errorf("Events().OOMKills = %d, want kill: %v", ooms, tc.wantKilled)
			}
		})
	}
}

func TestPidsLimit(t *testing.T) {
	m := newManager(t)
	needController(t, m, "pids")
	for _, tc := range []struct {
		name     string
		sleeps   int
		wantFail bool
	}{
		{"within limit", 3, false},
		{"over limit", 50, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := m.Create("pids", Limits{Pids: 8})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Delete()
			script := fmt.Sprintf("read x; for i in $(seq %d); do sleep 0.5 & done; wait", tc.sleeps)
			sh := exec.Command("/bin/sh", "-c", script)
			stderr := startIn(t, g, sh)
			// Wait also waits for the sleeps, which share sh's stderr.
			err = sh.Wait()
			if failed := err != nil; failed != tc.wantFail {
				t.Fatalf("sh: %v (stderr %q), want failure: %v", err, stderr, tc.wantFail)
			}
			if n := g.Events().PidsMax; (n >= 1) != tc.wantFail {
				t.Errorf("Events().PidsMax = %d, want refusals: %v", n, tc.wantFail)
			}
			if n := countLines(t, filepath.Join(g.dirs["pids"], "tasks")); n > 8 {
				t.Errorf("%d tasks in group, limit 8", n)
			}
		})
	}
}

func countLines(t *testing.T, file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return len(strings.Fields(string(b)))
}

func TestLimitFiles(t *testing.T) {
	m := newManager(t)
	const noLimitV1 = "9223372036854771712" // memory.limit_in_bytes when unset
	for _, tc := range []struct {
		name   string
		limits Limits
		v1, v2 map[string]string // "controller/file" -> content
	}{
		{
			name:   "all set",
			limits: Limits{MemoryBytes: 32 << 20, Pids: 8, CPUQuota: 0.5},
			v1: map[string]string{
				"memory/memory.limit_in_bytes": "33554432", "memory/memory.memsw.limit_in_bytes": "33554432",
				"pids/pids.max": "8", "cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000",
			},
			v2: map[string]string{
				"memory/memory.max": "33554432", "memory/memory.swap.max": "0", "memory/memory.oom.group": "1",
				"pids/pids.max": "8", "cpu/cpu.max": "50000 100000",
			},
		},
		{
			name:   "more than one core",
			limits: Limits{CPUQuota: 1.5},
			v1:     map[string]string{"cpu/cpu.cfs_quota_us": "150000", "cpu/cpu.cfs_period_us": "100000"},
			v2:     map[string]string{"cpu/cpu.max": "150000 100000"},
		},
		{
			name: "zero means no limit",
			v1:   map[string]string{"memory/memory.limit_in_bytes": noLimitV1, "pids/pids.max": "max", "cpu/cpu.cfs_quota_us": "-1"},
			v2:   map[string]string{"memory/memory.max": "max", "pids/pids.max": "max", "cpu/cpu.max": "max 100000"},
		},
	} {
		// Created with the limits, or updated to them from higher or from
		// lower ones (v1 needs the memory writes in a different order).
		for _, from := range []int64{0, 64 << 20, 16 << 20} {
			update := from != 0
			if update && tc.limits == (Limits{}) {
				continue // Update leaves zero fields as they are
			}
			t.Run(fmt.Sprintf("%s/update-from=%d", tc.name, from), func(t *testing.T) {
				created := tc.limits
				if update {
					created = Limits{MemoryBytes: from, Pids: 64, CPUQuota: 2}
				}
				g, err := m.Create("files", created)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Delete()
				if update {
					if err := g.Update(tc.limits); err != nil {
						t.Fatal(err)
					}
				}
				want := tc.v1
				if m.v2 {
					want = tc.v2
				}
				for key, w := range want {
					c, file, _ := strings.Cut(key, "/")
					dir, ok := g.dirs[c]
					if !ok {
						continue // controller unusable here
					}
					b, err := os.ReadFile(filepath.Join(dir, file))
					if errors.Is(err, os.ErrNotExist) && strings.Contains(file, "sw") {
						continue // no swap accounting on this kernel
					}
					if err != nil {
						t.Fatal(err)
					}
					if got := strings.TrimSpace(string(b)); got != w {
						t.Errorf("%s = %q, want %q", key, got, w)
					}
				}
			})
		}
	}
}

func TestInvalidLimits(t *testing.T) {
	m := newManager(t)
	for _, l := range []Limits{
		{MemoryBytes: -1}, {Pids: -1}, {CPUQuota: -1}, {CPUQuota: math.NaN()}, {CPUQuota: math.Inf(1)}, {CPUQuota: 0.001},
	} {
		if g, err := m.Create("bad", l); err == nil {
			g.Delete()
			t.Errorf("Create(%+v) succeeded", l)
		}
	}
}

func TestNames(t *testing.T) {
	m := newManager(t)
	for _, name := range []string{
		"", ".", "..", "a/b", "../x", "/abs", "a b", "a\x00", "a\n", "ü", strings.Repeat("a", 256),
	} {
		if g, err := m.Create(name, Limits{}); err == nil {
			g.Delete()
			t.Errorf("Create(%q) succeeded", name)
		}
		if m2, err := New(name); err == nil {
			m2.Close()
			t.Errorf("New(%q) succeeded", name)
		}
	}
	g, err := m.Create("pod-1_a.b:c@d=e+f", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Delete()
	// A second group of the same name must neither succeed nor disturb the first.
	if g2, err := m.Create("pod-1_a.b:c@d=e+f", Limits{}); err == nil {
		g2.Delete()
		t.Error("Create of an existing group succeeded")
	}
	for _, d := range g.dirs {
		if !exists(d) {
			t.Errorf("%s removed by failed duplicate Create", d)
		}
	}
}

func TestDeleteKillsAndRemoves(t *testing.T) {
	m := newManager(t)
	g, err := m.Create("del", Limits{Pids: 16})
	if err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "60")
	startIn(t, g, sleep)
	// Deleted before the child is reaped: a zombie must not keep it busy.
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	for c, d := range g.dirs {
		if exists(d) {
			t.Errorf("%s dir %s left after Delete", c, d)
		}
	}
	err = sleep.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("sleep ended with %v, want SIGKILL", err)
	}
	if err := g.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestCloseWithLiveGroup(t *testing.T) {
	m := newManager(t)
	g, err := m.Create("live", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, g, exec.Command("sleep", "60"))
	if err := m.Close(); err == nil {
		t.Error("Close succeeded with a process in a group")
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	// newManager's cleanup checks that Close now removes the parent.
}

func TestStaleParentReused(t *testing.T) {
	requireRoot(t)
	parent := parentName()
	m1, err := New(parent)
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	stale, err := m1.Create("w", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	// m1 "crashes": nothing is deleted or closed.
	m2, err := New(parent)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	for _, d := range stale.dirs {
		if exists(d) {
			t.Errorf("stale group %s not removed", d)
		}
	}
	g, err := m2.Create("w", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if e := g.Events(); e != (Events{}) {
		t.Errorf("fresh group Events() = %+v", e)
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
}

// unifiedWith skips unless this host is hybrid with controller c available
// in its (otherwise empty) v2 hierarchy, the only way to run the v2 code
// against a real kernel here.
func unifiedWith(t *testing.T, c string) string {
	requireRoot(t)
	const mount = "/sys/fs/cgroup/unified"
	b, _ := os.ReadFile(filepath.Join(mount, "cgroup.controllers"))
	if cgroups.Mode() != cgroups.Hybrid || !slices.Contains(strings.Fields(string(b)), c) {
		t.Skipf("no hybrid v2 hierarchy with %s", c)
	}
	return mount
}

func TestV2(t *testing.T) {
	mount := unifiedWith(t, "hugetlb")
	m, err := newV2(mount, parentName(), []string{"hugetlb"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		if exists(m.dirs["hugetlb"]) {
			t.Error("parent left after Close")
		}
	}()
	if got := m.Mode(); got != "v2" {
		t.Errorf("Mode() = %q", got)
	}
	// Limits of unusable controllers are ignored.
	g, err := m.Create("w", Limits{MemoryBytes: 1 << 20, Pids: 1, CPUQuota: 1})
	if err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "60")
	startIn(t, g, sleep)
	procs, _ := os.ReadFile(filepath.Join(g.dirs["hugetlb"], "cgroup.procs"))
	if !slices.Contains(strings.Fields(string(procs)), strconv.Itoa(sleep.Process.Pid)) {
		t.Errorf("pid %d not in group: cgroup.procs %q", sleep.Process.Pid, procs)
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	if exists(g.dirs["hugetlb"]) {
		t.Error("group left after Delete")
	}
}

func TestDelegateMovesProcesses(t *testing.T) {
	mount := unifiedWith(t, "hugetlb")
	dir := filepath.Join(mount, parentName())
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(dir, hostLeaf)
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sleep.Process.Kill()
		sleep.Wait()
		removeDir(leaf, false)
		removeDir(dir, false)
	}()
	pid := strconv.Itoa(sleep.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(pid), 0); err != nil {
		t.Fatal(err)
	}
	if err := delegate(dir, []string{"hugetlb"}); err != nil {
		t.Fatal(err)
	}
	sub, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if !slices.Contains(strings.Fields(string(sub)), "hugetlb") {
		t.Errorf("subtree_control = %q, want hugetlb", sub)
	}
	procs, _ := os.ReadFile(filepath.Join(leaf, "cgroup.procs"))
	if !slices.Contains(strings.Fields(string(procs)), pid) {
		t.Errorf("pid %s not moved to %s: %q", pid, leaf, procs)
	}
}

// BenchmarkCreateAddDelete times the cgroup work per worker start: Create
// with all limits, Add of a running process, and Delete once it has exited.
// Starting and reaping the process are not timed.
func BenchmarkCreateAddDelete(b *testing.B) {
	m := newManager(b)
	l := Limits{MemoryBytes: 256 << 20, Pids: 64, CPUQuota: 1}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p := exec.Command("sleep", "60")
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		g, err := m.Create("bench", l)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Add(p.Process.Pid); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p.Process.Kill()
		p.Wait()
		b.StartTimer()
		if err := g.Delete(); err != nil {
			b.Fatal(err)
		}
	}
}
