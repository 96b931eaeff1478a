// Package jail confines a worker process: the native layers below wazero.
//
// Most of it runs inside the worker, on itself. Setup, first thing in the
// worker's main and before any untrusted byte arrives, installs what does
// not depend on the module: private mounts, /proc and tmpfs in the
// namespaces the host started it in, the drop to an unprivileged inner id
// with no capabilities, rlimits, no_new_privs and Landlock.
// Jail.InstallSeccomp adds the seccomp allowlist (seccomp.profile, with
// the SIGSYS handler that reports a trapped syscall) once the module is
// compiled and before guest code runs. RunProbe runs the canaries that
// check these layers from inside.
//
// A few pieces are called by the host, because the jail's contract spans
// both processes: Namespaces fills in the worker's exec attributes (the
// user namespace's id map and the other namespaces), Env marks a worker
// so started, IDsPerWorker sizes the host's id blocks, and SyscallName,
// SigsysExitCode and SeccompViolationMarker let the host explain how a
// worker died.
//
// What runs in the worker trusts the host that started it and nothing
// else; it takes no input from guest code. It depends on no other part
// of the worker (only on wire, for the report of its layers).
package jail
