// Package sandbox is the host's side of the worker processes that run
// untrusted WebAssembly: it starts them, hands each one module for one pod
// identity, sends it batches and judges its answers. Nothing here runs in
// a worker, and nothing a worker sends is trusted: answers are bounded to
// the batch limit, matched to a pending request or the worker is killed
// for breaking the protocol, and a worker's death is explained from what
// the host saw (exit status, the SIGSYS report on stderr, cgroup events).
//
// The split follows the process boundary, as gVisor's runsc/sandbox (host)
// and runsc/boot (inside the sandbox) do:
//
//   - sandbox (this package, host process): Worker, Spares, Start,
//     Precompile, Doctor, Host, IDPool, PodLimits, the call errors.
//   - sandbox/internal/worker (worker process): the worker's main loop,
//     the wazero engine, the direct-ABI driver, the memory allocator.
//     WorkerMain is its entry point for the `udfhost worker` command.
//   - sandbox/internal/jail (worker process, plus a few functions the host
//     calls to start a worker in its namespaces and to explain its death):
//     namespaces, ids, rlimits, Landlock, seccomp and its profile.
//   - sandbox/internal/wire (both): the frames, call header and messages
//     the two sides exchange over the socketpair.
//
// Start re-executes the udfhost binary as `udfhost worker` with one end of
// a socketpair as fd 3; the worker installs its jail (all of it but the
// seccomp filter, which follows the compile) before it is handed the
// module, then answers calls over that socket. A worker never runs code of
// another identity.
//
// Inside the worker, wazero is the first wall: no WASI filesystem, network,
// environment or real clock, a memory limit in pages (each linear memory
// reserved at its maximum and never copied, so a worker's guests can take
// no more than instances × limit, which its cgroup provides for), and every
// instance that traps or times out is discarded. The native layers are
// the second wall: the jail (sandbox/internal/jail) and the cgroup the
// host puts the worker in.
//
// Every batch that starts is stopped by its deadline, whether or not its
// caller still waits: the host keeps a watchdog for each batch in flight
// until it is answered. How it is stopped depends on the pool's interrupt
// mode. In process mode (the default pool's), guest code is compiled
// without cancellation checks and the watchdog kills the worker at the
// deadline; the other batches in flight on it fail with ErrWorkerDied,
// naming the batch that overran. In wasm mode the module is compiled with
// WithCloseOnContextDone and the worker interrupts the instance at the
// deadline itself; the host's watchdog kills the worker only if it has not
// answered a few seconds later. A failure of a batch whose caller has gone
// is reported through CallReporting's callback, so it is charged to that
// batch.
//
// The one request a worker makes of the host is egress (egress.go): a
// connector's guest asks, through the udfhost_http import module, for an
// HTTP exchange during a call. The worker has no network; the host checks
// the frame (a malformed one, one for a call that is not running, or one
// past the worker's cap is refused at once) and hands the request to the
// handler the call was made with (WithEgress), the server's broker, whose
// answer it sends back. A call without a handler has no network at all.
package sandbox
