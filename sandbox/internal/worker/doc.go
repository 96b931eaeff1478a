// Package worker is what runs inside a jailed worker process once it has
// started: Main jails the process (package jail), then reads the host's
// frames (package wire) on fd 3, compiles the one module it is given for
// one pod identity, and answers calls until the host closes the socket.
//
// Inside it: the wazero engine (a bounded set of instances of the module,
// each discarded when it traps or times out), the direct-ABI driver
// generator (a small wasm module per export and signature that loops
// over a batch's rows inside wasm), the linear-memory allocator that
// reserves each instance's memory at its maximum outside the Go heap, and
// the udfhost_http import module (http.go), instantiated only for a module
// that imports it: a guest's HTTP request becomes a KindEgress frame to
// the host, the instance waits for the KindEgressReply with its egress id
// (a reply no instance waits for is dropped: its call's deadline passed),
// and the worker itself opens no socket.
//
// It trusts the host's frames on fd 3: the module, its limits and each
// call's FuncSpec are the host's word, checked only as far as the
// worker's own safety needs (frame sizes, header bounds, the export's
// signature). It trusts neither the guest module nor anything it returns:
// wazero confines its code, the worker's memory and deadline limits bound
// it, and every output region is checked (abi.CopyOutput) before a byte
// goes back; every pointer a guest hands udfhost_http is checked against
// its memory. The host, in turn, trusts nothing this process sends.
//
// It imports no gRPC and nothing of udfhost above the sandbox: only
// internal/abi, internal/udf, internal/wasmenc, jail and wire.
package worker
