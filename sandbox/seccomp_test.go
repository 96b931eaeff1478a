package sandbox

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSeccompProfileParses(t *testing.T) {
	rules, err := parseSeccompProfile(seccompProfile)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) < 20 {
		t.Fatalf("only %d rules", len(rules))
	}
	f, err := buildSeccompFilter(seccompProfile)
	if err != nil {
		t.Fatal(err)
	}
	f.Release()
	// What the filter exists to refuse must never creep in.
	forbidden := []string{"socket", "connect", "bind", "execve", "execveat", "ptrace", "mount", "umount2", "bpf",
		"keyctl", "add_key", "userfaultfd", "perf_event_open", "unshare", "setns", "pivot_root", "chroot",
		"open_by_handle_at", "init_module", "kexec_load", "process_vm_readv", "process_vm_writev",
		"rt_sigaction", "setuid", "setgid", "setgroups", "prctl", "seccomp", "fork", "vfork", "kill"}
	have := map[string]bool{}
	for _, r := range rules {
		have[r.name] = true
	}
	for _, s := range forbidden {
		if have[s] {
			t.Errorf("%s is on the allowlist", s)
		}
	}
}

func TestSeccompProfileRejectsBadLines(t *testing.T) {
	for _, bad := range []string{
		"read allow",                     // no reason
		"read allow #",                   // empty reason
		"read maybe # why",               // unknown action
		"read allow # a\nread allow # b", // twice
		"nosuchsyscall allow # why",
	} {
		if _, err := buildSeccompFilter([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestSeccompProfileCoversMeasurement checks the profile against the last
// measurement (scripts/measure-syscalls.sh writes bin/syscalls.measured):
// a syscall the worker was seen making must be on it.
func TestSeccompProfileCoversMeasurement(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "bin", "syscalls.measured"))
	if err != nil {
		t.Skip("no measurement; run scripts/measure-syscalls.sh")
	}
	defer f.Close()
	rules, _ := parseSeccompProfile(seccompProfile)
	have := map[string]bool{}
	for _, r := range rules {
		have[r.name] = true
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name := strings.Fields(sc.Text()); len(name) > 0 && !have[name[0]] {
			t.Errorf("measured syscall %s is not on sandbox/seccomp.profile", name[0])
		}
	}
}
