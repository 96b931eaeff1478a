package sandbox

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Layer is one isolation layer of a worker and whether it is active.
type Layer struct {
	Name   string `json:"name"`
	Active bool   `json:"active"`
	Detail string `json:"detail,omitempty"`
}

// namespaceFlags are the namespaces a worker is started in (spawn). The
// network namespace has only a loopback interface, down.
const namespaceFlags = unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWPID | unix.CLONE_NEWNS

// applyJail installs the native layers behind wazero, after compilation and
// before any guest code runs. The order matters: namespaces are entered at
// spawn; the mount namespace is made private and /proc remounted (so the
// worker sees only its own pid namespace); then rlimits and
// PR_SET_NO_NEW_PRIVS.
//
// Not yet here (issue "Defense in depth"): a user namespace with an
// unprivileged per-pod uid, Landlock, the seccomp allowlist and cgroup
// limits. They are reported as inactive, never assumed.
func applyJail(cfg loadConfig) ([]Layer, error) {
	layers := []Layer{{Name: "wazero", Active: true, Detail: "no WASI fs/net/env, fake clock, memory limit, deadline"}}
	layers = append(layers, namespaces())
	l, err := rlimits()
	layers = append(layers, l)
	if err != nil {
		return layers, err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return layers, fmt.Errorf("PR_SET_NO_NEW_PRIVS: %w", err)
	}
	layers = append(layers,
		Layer{Name: "no_new_privs", Active: true},
		Layer{Name: "user_namespace", Active: false, Detail: "not yet: the worker runs as root inside its namespaces"},
		Layer{Name: "landlock", Active: false, Detail: "not yet"},
		Layer{Name: "seccomp", Active: false, Detail: "not yet"},
		Layer{Name: "cgroups", Active: false, Detail: "not yet"},
	)
	return layers, nil
}

// namespaces reports the namespaces the worker was started in and, when it
// is the init of its own pid and mount namespaces, makes its mounts private
// and mounts a /proc of its own pid namespace.
func namespaces() Layer {
	if os.Getpid() != 1 {
		return Layer{Name: "namespaces", Active: false, Detail: "worker not started in its own namespaces (host not root?)"}
	}
	// Without MS_PRIVATE a mount here would propagate to the host's
	// namespace, since / is usually a shared mount.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return Layer{Name: "namespaces", Active: false, Detail: fmt.Sprintf("make mounts private: %v", err)}
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return Layer{Name: "namespaces", Active: false, Detail: fmt.Sprintf("mount /proc: %v", err)}
	}
	unix.Sethostname([]byte("udfhost-worker"))
	return Layer{Name: "namespaces", Active: true, Detail: "net (loopback down), ipc, uts, pid, mount"}
}

// rlimits caps what the worker process may hold. Address space is not
// capped: wazero reserves linear memory (plus guard regions) virtually, and
// the memory limit is enforced in pages by wazero and, later, by cgroups.
func rlimits() (Layer, error) {
	set := []struct {
		name     string
		resource int
		max      uint64
	}{
		{"core", unix.RLIMIT_CORE, 0},         // no core dumps of tenant memory
		{"nofile", unix.RLIMIT_NOFILE, 64},    // the socket, the cache, the runtime's own
		{"msgqueue", unix.RLIMIT_MSGQUEUE, 0}, // no POSIX message queues
		{"memlock", unix.RLIMIT_MEMLOCK, 0},   // no locked memory
		{"sigpending", unix.RLIMIT_SIGPENDING, 64},
	}
	for _, s := range set {
		lim := unix.Rlimit{Cur: s.max, Max: s.max}
		if err := unix.Setrlimit(s.resource, &lim); err != nil {
			return Layer{Name: "rlimits", Active: false, Detail: fmt.Sprintf("RLIMIT_%s: %v", s.name, err)}, fmt.Errorf("set RLIMIT_%s: %w", s.name, err)
		}
	}
	return Layer{Name: "rlimits", Active: true, Detail: "core 0, nofile 64, msgqueue 0, memlock 0, sigpending 64"}, nil
}
