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

// busyProc is the process of a tree that used the most CPU in a window.
type busyProc struct {
	pid   int
	comm  string
	share float64 // of one core
}

// busiestDescendant samples root's process tree twice, window apart, and
// returns the process (present both times) that used the most CPU.
func busiestDescendant(root int, window time.Duration) (busyProc, error) {
	const ticksPerSecond = 100 // USER_HZ on Linux
	before := processTree(root)
	if len(before) == 0 {
		return busyProc{}, fmt.Errorf("process %d not found", root)
	}
	t0 := time.Now()
	time.Sleep(window)
	after := processTree(root)
	secs := time.Since(t0).Seconds()
	var best busyProc
	for pid, a := range after {
		b, ok := before[pid]
		if !ok {
			continue
		}
		share := float64(a.ticks-b.ticks) / ticksPerSecond / secs
		if share > best.share || best.pid == 0 {
			best = busyProc{pid: pid, comm: a.comm, share: share}
		}
	}
	return best, nil
}
