package sandbox

import (
	"github.com/tetratelabs/wazero"

	"github.com/udfhost/udfhost/sandbox/internal/worker"
)

// WorkerMain is the body of the hidden `udfhost worker` command. It is the
// worker side of the process boundary: it runs in the worker process the
// host re-executed (Start, Spares), never in the host, and hands over to
// package sandbox/internal/worker, which jails the process and serves one
// module over the socket on fd 3 until the host closes it. It returns the
// process exit code.
func WorkerMain() int { return worker.Main(nil) }

// RuntimeConfig is the wazero configuration workers compile with. Validation
// must compile with the same one: it is part of the compilation cache key.
func RuntimeConfig(preciseInterrupt bool) wazero.RuntimeConfig {
	return worker.RuntimeConfig(preciseInterrupt)
}
