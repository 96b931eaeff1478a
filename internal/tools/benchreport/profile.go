package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTicks returns a process's user+system CPU time in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	s := string(b)
	rest := s[strings.LastIndexByte(s, ')')+2:]
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

const ticksPerSecond = 100 // USER_HZ on Linux

// cpuSplit is how busy each process was during one load run, in cores.
type cpuSplit struct {
	host, worker, client float64
	cmd                  string
}

// measureSplit runs a bench command and reports the CPU each process used
// per second of the run.
func measureSplit(s *server, workerPID int, args ...string) (cpuSplit, error) {
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "UDFHOST_ADDR="+s.addr, "UDFHOST_DATA="+s.data, "UDFHOST_TOKEN="+s.token)
	h0, w0 := cpuTicks(s.cmd.Process.Pid), cpuTicks(workerPID)
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return cpuSplit{}, fmt.Errorf("udfhost %s: %v", strings.Join(args, " "), err)
	}
	wall := time.Since(start).Seconds()
	h1, w1 := cpuTicks(s.cmd.Process.Pid), cpuTicks(workerPID)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	client := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return cpuSplit{
		host:   float64(h1-h0) / ticksPerSecond / wall,
		worker: float64(w1-w0) / ticksPerSecond / wall,
		client: client / wall,
		cmd:    "udfhost " + strings.Join(args, " "),
	}, nil
}

// hostProfile starts a separate server with --cpuprofile, runs the
// 16-stream affine load against it and returns `go tool pprof -top`.
func hostProfile(cfg config, affine []byte, dur string) (string, error) {
	dir, err := os.MkdirTemp("", "udfhost-prof-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	prof := filepath.Join(dir, "host.prof")
	s, err := startServerArgs(cfg.bin, "--cpuprofile", prof)
	if err != nil {
		return "", err
	}
	id, err := s.uploadBytes("affine", affine)
	if err == nil {
		err = s.createFunction("affine_batch", id, "affine", "(BIGINT, BIGINT, BIGINT) -> BIGINT")
	}
	if err == nil {
		_, err = s.cli("bench", "--function", "affine_batch", "--streams", "16", "--duration", dur)
	}
	s.stop() // SIGTERM: serve writes the profile as it exits
	if err != nil {
		return "", err
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", cfg.bin, prof).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("pprof: %v: %s", err, out)
	}
	return string(out), nil
}
