package jail

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// A worker in its own user namespace holds two ids, mapped to a block of
// two host ids that belong to that worker alone:
//
//	inside 0 -> host base+2k   only while the worker sets up its mounts
//	inside 1 -> host base+2k+1 the id it runs guest code as, without caps
//
// So a worker that escaped wasm is an unprivileged id inside and outside,
// and no two live workers (no two pods) share a host id.
const (
	innerSetupID = 0
	innerRunID   = 1
	// IDsPerWorker is the size of a worker's host id block: the host's
	// pool hands out blocks of this many uids/gids.
	IDsPerWorker = 2
)

// namespaceFlags are the namespaces a worker is started in, besides its
// user namespace. The network namespace has only a loopback, down.
const namespaceFlags = unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWPID | unix.CLONE_NEWNS

// Env tells a worker the host started it in its own namespaces; the
// worker cannot tell reliably (under strace it is not pid 1). The host
// gives it as the worker's whole environment.
const (
	envName = "UDFHOST_WORKER_JAIL"
	Env     = envName + "=1"
)

// Namespaces is called by the host, not the worker: it adds to attr, the
// worker's exec attributes, what Setup expects to find: a user namespace
// mapping the worker's two inner ids to the host id block that starts at
// hostID, and namespaces of its own for net, ipc, uts, pid and mounts.
// The host's supplementary groups are dropped (setgroups is allowed for
// that one call; the seccomp filter forbids it later). The host must
// also set Env and be root to map a foreign id block.
func Namespaces(attr *syscall.SysProcAttr, hostID uint32) {
	attr.Cloneflags |= syscall.CLONE_NEWUSER | namespaceFlags
	attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: innerSetupID, HostID: int(hostID), Size: IDsPerWorker}}
	attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: innerSetupID, HostID: int(hostID), Size: IDsPerWorker}}
	attr.GidMappingsEnableSetgroups = true
	attr.Credential = &syscall.Credential{Uid: innerSetupID, Gid: innerSetupID, Groups: []uint32{}}
}
