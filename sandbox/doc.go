// Package sandbox runs untrusted WebAssembly in worker processes.
//
// The host side (Worker) re-executes the udfhost binary as `udfhost worker`
// with one end of a socketpair as fd 3; the worker side (WorkerMain) loads
// one module for one pod identity and answers calls over that socket. A
// worker never runs code of another identity.
//
// Inside the worker, wazero is the first wall: no WASI filesystem, network,
// environment or real clock, a memory limit in pages (each linear memory
// reserved at its maximum and never copied, so a worker's guests can take
// no more than instances × limit, which its cgroup provides for), and every
// instance that traps or times out is discarded. The native jail (jail.go)
// is the second wall.
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
package sandbox
