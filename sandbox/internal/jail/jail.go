package jail

import (
	"fmt"
	"os"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	"golang.org/x/sys/unix"

	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// ScratchDir is the worker's private tmpfs: its copy of the compilation
// cache, and the only path it may write. It is mounted over /tmp, so the
// host's /tmp is out of sight too.
const (
	ScratchDir  = "/tmp"
	scratchSize = "size=512m,nr_inodes=4096"
)

// Jail is what a worker has installed so far. The worker reports its
// Layers to the host, which judges them (strict mode).
type Jail struct {
	layers     []wire.Layer
	namespaced bool // in its own user, mount, pid, ... namespaces
}

func (j *Jail) add(name string, err error, detail string) {
	l := wire.Layer{Name: name, Active: err == nil, Detail: detail}
	if err != nil {
		l.Detail = err.Error()
	}
	j.layers = append(j.layers, l)
}

// Layers are the layers installed or tried so far, in order.
func (j *Jail) Layers() []wire.Layer { return j.layers }

// Namespaced reports whether the host started the worker in namespaces of
// its own (Namespaces): only then are its mounts, ids and Landlock set up,
// and the host's files out of its reach.
func (j *Jail) Namespaced() bool { return j.namespaced }

// Setup installs every layer that does not depend on the module, as soon
// as the worker starts, so a spare process is jailed before it is handed
// any untrusted bytes: private mounts and /proc, a private tmpfs, the drop
// to an unprivileged id, rlimits, no_new_privs and Landlock. The seccomp
// filter follows once the module is compiled (InstallSeccomp). Setup runs
// in the worker process, first thing in its main.
func Setup() *Jail {
	j := &Jail{namespaced: os.Getenv(envName) == "1"}
	j.add(wire.LayerWazero, nil, "no WASI fs/net/env, fake clock, memory limit, deadline")
	if j.namespaced {
		err := mountPrivate()
		j.add(wire.LayerUserNS, dropIDs(), fmt.Sprintf("runs as uid/gid %d inside, an unprivileged per-worker id outside, no capabilities", innerRunID))
		j.add(wire.LayerNamespaces, err, "user, net (loopback down), ipc, uts, pid, mount; private /proc and /tmp")
	} else {
		j.add(wire.LayerUserNS, fmt.Errorf("not started in its own namespaces (host not root)"), "")
		j.add(wire.LayerNamespaces, fmt.Errorf("not started in its own namespaces (host not root)"), "")
	}
	j.add(wire.LayerRlimits, rlimits(), "core 0, nofile 64, nproc 512, msgqueue 0, memlock 0, sigpending 64, fsize 256 MiB")
	j.add(wire.LayerNoNewPrivs, unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "")
	if j.namespaced {
		j.add(wire.LayerLandlock, restrictFS(), "filesystem: read/write only the private /tmp; TCP bind/connect denied; abstract sockets and signals scoped")
	} else {
		j.add(wire.LayerLandlock, fmt.Errorf("needs the private /tmp of a namespaced worker"), "")
	}
	return j
}

// mountPrivate makes the worker's mounts private (so nothing it mounts
// propagates to the host), mounts a /proc of its own pid namespace and a
// size-capped tmpfs over /tmp.
func mountPrivate() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	opts := fmt.Sprintf("%s,mode=0700,uid=%d,gid=%d", scratchSize, innerRunID, innerRunID)
	if err := unix.Mount("tmpfs", ScratchDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", ScratchDir, err)
	}
	if err := unix.Sethostname([]byte("udfhost-worker")); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	return nil
}

// dropIDs switches every thread to the unprivileged inner id. A non-zero
// uid without SECBIT_KEEP_CAPS loses all capabilities, and the bounding
// set is emptied so no exec could bring them back.
func dropIDs() error {
	for c := 0; c <= 63; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Setresgid(innerRunID, innerRunID, innerRunID); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := unix.Setresuid(innerRunID, innerRunID, innerRunID); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if data[0].Effective|data[0].Permitted|data[1].Effective|data[1].Permitted != 0 {
		return fmt.Errorf("capabilities left after dropping ids: %#x", data[0].Effective)
	}
	return nil
}

// rlimits caps what the worker process may hold. Address space is not
// capped: wazero reserves linear memory (plus guard regions) virtually;
// memory is bounded in pages by wazero and in bytes by the cgroup.
func rlimits() error {
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
		{"nproc", unix.RLIMIT_NPROC, 512},       // threads of this worker's own host uid
		{"fsize", unix.RLIMIT_FSIZE, 256 << 20}, // no file larger than a compiled module
	}
	for _, s := range set {
		lim := unix.Rlimit{Cur: s.max, Max: s.max}
		if err := unix.Setrlimit(s.resource, &lim); err != nil {
			return fmt.Errorf("set RLIMIT_%s: %w", strings.ToUpper(s.name), err)
		}
	}
	return nil
}

// restrictFS confines every thread with Landlock: the private /tmp is the
// only path it may read or write, TCP bind and connect are denied, and it
// may neither reach abstract unix sockets nor signal processes outside
// its domain. ABI 6 is required: an older kernel fails the layer rather
// than silently dropping rights.
func restrictFS() error {
	return landlock.V6.Restrict(landlock.RWDirs(ScratchDir))
}
