// Package sandbox runs untrusted WebAssembly in worker processes.
//
// The host side (Worker) re-executes the udfhost binary as `udfhost worker`
// with one end of a socketpair as fd 3; the worker side (WorkerMain) loads
// one module for one pod identity and answers calls over that socket. A
// worker never runs code of another identity.
//
// Inside the worker, wazero is the first wall: no WASI filesystem, network,
// environment or real clock, a memory limit in pages, a per-batch deadline
// with WithCloseOnContextDone, and every instance that traps or times out is
// discarded. The native jail (jail.go) is the second wall.
package sandbox
