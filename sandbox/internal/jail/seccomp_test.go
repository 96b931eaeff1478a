package jail

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

// TestSeccompProfileCoversMeasurement checks the profile against the
// committed measurement, testdata/syscalls.measured (written by
// scripts/measure-syscalls.sh: every syscall a jailed worker was traced
// making where the filter would be): each must be on the profile. A fresh
// bin/syscalls.measured, when one exists, is checked too. It also checks
// that the check fails for a profile missing one measured syscall.
func TestSeccompProfileCoversMeasurement(t *testing.T) {
	committed, err := os.ReadFile(filepath.Join("testdata", "syscalls.measured"))
	if err != nil {
		t.Fatalf("the committed measurement: %v (scripts/measure-syscalls.sh writes it)", err)
	}
	measured := measuredSyscalls(string(committed))
	if len(measured) < 20 {
		t.Fatalf("the committed measurement lists %d syscalls", len(measured))
	}
	for _, s := range uncovered(t, seccompProfile, measured) {
		t.Errorf("measured syscall %s is not on sandbox/internal/jail/seccomp.profile", s)
	}
	if fresh, err := os.ReadFile(filepath.Join("..", "..", "..", "bin", "syscalls.measured")); err == nil {
		for _, s := range uncovered(t, seccompProfile, measuredSyscalls(string(fresh))) {
			t.Errorf("syscall %s of the last measurement (bin/syscalls.measured) is not on sandbox/internal/jail/seccomp.profile", s)
		}
	}
	// The check itself: drop each measured syscall from the profile in
	// turn; that one, and only it, must be reported.
	for _, drop := range measured {
		var kept []string
		for _, line := range strings.Split(string(seccompProfile), "\n") {
			if f := strings.Fields(line); len(f) == 0 || f[0] != drop {
				kept = append(kept, line)
			}
		}
		if got := uncovered(t, []byte(strings.Join(kept, "\n")), measured); len(got) != 1 || got[0] != drop {
			t.Errorf("profile without %s: uncovered %v", drop, got)
		}
	}
}

// measuredSyscalls are the syscall names of a measurement ("name count"
// lines).
func measuredSyscalls(text string) []string {
	var names []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// uncovered lists the measured syscalls profile does not name.
func uncovered(t *testing.T, profile []byte, measured []string) []string {
	t.Helper()
	rules, err := parseSeccompProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, r := range rules {
		have[r.name] = true
	}
	var missing []string
	for _, s := range measured {
		if !have[s] {
			missing = append(missing, s)
		}
	}
	return missing
}
