package jail

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// seccompProfile is the worker's syscall allowlist: one syscall per line,
// its action and, after '#', why the Go runtime or wazero needs it. It is
// data, measured with scripts/measure-syscalls.sh, not guessed.
//
//go:embed seccomp.profile
var seccompProfile []byte

// SeccompProfileHash identifies the allowlist workers run under; serve
// audits it with the layers it measured, and a worker reports it in its
// seccomp layer.
func SeccompProfileHash() string {
	sum := sha256.Sum256(seccompProfile)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// seccompRule is one line of the profile.
type seccompRule struct {
	name   string
	action string // allow, thread (clone with CLONE_THREAD only), enosys, eperm
	why    string
}

func parseSeccompProfile(data []byte) ([]seccompRule, error) {
	var rules []seccompRule
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		spec, why, ok := strings.Cut(line, "#")
		f := strings.Fields(spec)
		if !ok || strings.TrimSpace(why) == "" || len(f) != 2 {
			return nil, fmt.Errorf("seccomp profile line %d: want \"<syscall> <action> # <why>\", got %q", n, line)
		}
		switch f[1] {
		case "allow", "thread", "enosys", "eperm":
		default:
			return nil, fmt.Errorf("seccomp profile line %d: unknown action %q", n, f[1])
		}
		if seen[f[0]] {
			return nil, fmt.Errorf("seccomp profile line %d: %s listed twice", n, f[0])
		}
		seen[f[0]] = true
		rules = append(rules, seccompRule{name: f[0], action: f[1], why: strings.TrimSpace(why)})
	}
	return rules, sc.Err()
}

// buildSeccompFilter compiles the profile. Anything not on it traps, and
// the SIGSYS handler (sigsys.go) reports the syscall and ends the process.
func buildSeccompFilter(data []byte) (*seccomp.ScmpFilter, error) {
	rules, err := parseSeccompProfile(data)
	if err != nil {
		return nil, err
	}
	f, err := seccomp.NewFilter(seccomp.ActTrap)
	if err != nil {
		return nil, fmt.Errorf("new seccomp filter: %w", err)
	}
	// A 32-bit or x32 syscall would bypass an allowlist written for
	// x86_64 numbers: kill, do not trap, as the handler cannot help.
	if err := f.SetBadArchAction(seccomp.ActKillProcess); err != nil {
		f.Release()
		return nil, fmt.Errorf("seccomp bad-arch action: %w", err)
	}
	// A binary tree instead of a linear list of comparisons: every
	// syscall of the hot path (futex, read, write, epoll_pwait, ...) then
	// runs a handful of BPF instructions, not dozens.
	if err := f.SetOptimize(2); err != nil {
		f.Release()
		return nil, fmt.Errorf("seccomp optimize: %w", err)
	}
	for _, r := range rules {
		nr, err := seccomp.GetSyscallFromName(r.name)
		if err != nil {
			f.Release()
			return nil, fmt.Errorf("seccomp profile: unknown syscall %q: %w", r.name, err)
		}
		switch r.action {
		case "allow":
			err = f.AddRule(nr, seccomp.ActAllow)
		case "enosys":
			err = f.AddRule(nr, seccomp.ActErrno.SetReturnCode(int16(unix.ENOSYS)))
		case "eperm":
			err = f.AddRule(nr, seccomp.ActErrno.SetReturnCode(int16(unix.EPERM)))
		case "thread":
			var c seccomp.ScmpCondition
			if c, err = seccomp.MakeCondition(0, seccomp.CompareMaskedEqual, unix.CLONE_THREAD, unix.CLONE_THREAD); err == nil {
				err = f.AddRuleConditional(nr, seccomp.ActAllow, []seccomp.ScmpCondition{c})
			}
		}
		if err != nil {
			f.Release()
			return nil, fmt.Errorf("seccomp rule for %s: %w", r.name, err)
		}
	}
	return f, nil
}

// MeasureMarker is the path a measuring worker probes where the filter
// would be installed: syscalls traced after it are what the filter must
// allow (scripts/measure-syscalls.sh, TestMeasureSyscalls).
const MeasureMarker = "/udfhost-seccomp-installed-here"

// InstallSeccomp installs the seccomp filter on every thread of the
// worker, the jail's last layer, once the module is compiled and before
// any guest code runs; or, when measure is set, only marks the point
// where it would go (MeasureMarker) and reports the layer inactive.
func (j *Jail) InstallSeccomp(measure bool) {
	if measure {
		unix.Access(MeasureMarker, unix.F_OK)
		j.add(wire.LayerSeccomp, errors.New("skipped: measuring syscalls"), "")
		return
	}
	j.add(wire.LayerSeccomp, installSeccomp(), "allowlist "+SeccompProfileHash()+"; anything else traps and ends the worker")
}

// installSeccomp loads the filter on every thread of the worker (libseccomp
// always asks the kernel for TSYNC, so threads the Go runtime has already
// started are covered too). no_new_privs must already be set.
func installSeccomp() error {
	if err := installSigsysHandler(); err != nil {
		return err
	}
	f, err := buildSeccompFilter(seccompProfile)
	if err != nil {
		return err
	}
	defer f.Release()
	if err := f.Load(); err != nil {
		return fmt.Errorf("load seccomp filter: %w", err)
	}
	return nil
}

// SyscallName names a syscall number a trap reported. The host calls it
// on the number a dead worker's stderr carried (SeccompViolationMarker).
func SyscallName(nr int) string {
	name, err := seccomp.ScmpSyscall(nr).GetName()
	if err != nil {
		return fmt.Sprintf("syscall %d", nr)
	}
	return name
}
