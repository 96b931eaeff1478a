package sectest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// listenerPID finds the local process listening on addr's TCP port, by
// way of /proc: the socket's inode in /proc/net/tcp{,6}, then the process
// holding it.
func listenerPID(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0, fmt.Errorf("port %q: %w", port, err)
	}
	want := fmt.Sprintf(":%04X", p)
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			if len(fields) > 9 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no local process listens on %s", addr)
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil && inodes[link] {
			return strconv.Atoi(strings.Split(fd, "/")[2])
		}
	}
	return 0, fmt.Errorf("the listener on %s belongs to no process this user can see", addr)
}

// rssBytes is a process's resident set size.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// procCPU is one process's CPU time so far, from /proc/PID/stat.
type procCPU struct {
	pid, ppid int
	comm      string
	ticks     int64 // utime + stime, in clock ticks
}

// readProcStat parses /proc/PID/stat (the command is in parentheses and
// may hold spaces, so fields are counted from its closing one).
func readProcStat(pid int) (procCPU, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCPU{}, err
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procCPU{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[closing+1:])
	// f[0] is the state (field 3); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procCPU{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return procCPU{pid: pid, ppid: ppid, comm: s[open+1 : closing], ticks: ut + st}, nil
}

// processTree is root and all its descendants now.
func processTree(root int) map[int]procCPU {
	all := map[int]procCPU{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if p, err := readProcStat(pid); err == nil {
			all[pid] = p
		}
	}
	children := map[int][]int{}
	for _, p := range all {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	tree := map[int]procCPU{}
	var walk func(int)
	walk = func(pid int) {
		p, ok := all[pid]
		if !ok {
			return
		}
		tree[pid] = p
		for _, c := range children[pid] {
			walk(c)
		}
	}
	walk(root)
	return tree
}

// busyProc is the busiest process of a tree over a window.
type busyProc struct {
	pid  int
	comm string
	// share is the CPU it used, as a share of one core: on a loaded
	// machine a spinning process may get much less than a core.
	share float64
	// runnable is the share of samples in which one of its threads was
	// running or waiting for a CPU (state R): near 1 for a thread that
	// spins, however loaded the machine, near 0 for an idle one.
	runnable float64
}

// busiestDescendant samples root's process tree over window and returns
// the process, present from start to end, with the most runnable thread
// (ties: the most CPU).
func busiestDescendant(root int, window time.Duration) (busyProc, error) {
	const ticksPerSecond = 100 // USER_HZ on Linux
	before := processTree(root)
	if len(before) == 0 {
		return busyProc{}, fmt.Errorf("process %d not found", root)
	}
	type tid struct{ pid, tid int }
	running := map[tid]int{}
	samples := 0
	t0 := time.Now()
	for time.Since(t0) < window {
		for pid := range before {
			tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*/stat", pid))
			for _, t := range tasks {
				b, err := os.ReadFile(t)
				if err != nil {
					continue
				}
				if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'R' {
					n, _ := strconv.Atoi(filepath.Base(filepath.Dir(t)))
					running[tid{pid, n}]++
				}
			}
		}
		samples++
		time.Sleep(20 * time.Millisecond)
	}
	after := processTree(root)
	secs := time.Since(t0).Seconds()
	best := map[int]float64{}
	for t, n := range running {
		best[t.pid] = max(best[t.pid], float64(n)/float64(samples))
	}
	var out busyProc
	for pid, a := range after {
		b, ok := before[pid]
		if !ok {
			continue
		}
		p := busyProc{pid: pid, comm: a.comm, share: float64(a.ticks-b.ticks) / ticksPerSecond / secs, runnable: best[pid]}
		if out.pid == 0 || p.runnable > out.runnable || p.runnable == out.runnable && p.share > out.share {
			out = p
		}
	}
	return out, nil
}
