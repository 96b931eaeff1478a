package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/udfhost/udfhost/internal/cgroup"
	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/sandbox/internal/jail"
	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// Report is what Doctor found: the layers a jailed worker reports and what
// its probes could do.
type Report struct {
	Layers  []Layer `json:"layers"`
	Probes  []Probe `json:"probes"`
	StartMS float64 `json:"worker_start_ms"`
}

// tinyModule is the smallest module a worker accepts: one export, f() -> i32.
var tinyModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type: () -> i32
	0x03, 0x02, 0x01, 0x00, // func 0 of type 0
	0x07, 0x05, 0x01, 0x01, 'f', 0x00, 0x00, // export "f"
	0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x00, 0x0b, // body: i32.const 0
}

// Doctor starts jailed workers (as serve would, with cfg's executable,
// ids and strictness) and runs each canary probe inside one of its own: a
// probe the seccomp filter traps ends its worker, which is how it is
// denied.
func Doctor(ctx context.Context, cfg Config) (Report, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Report{}, fmt.Errorf("doctor: listen on loopback: %w", err)
	}
	defer ln.Close()
	cfg.Identity, cfg.Module = "spiffe://udfhost.local/doctor", tinyModule
	cfg.MemoryLimitPages, cfg.MaxInstances = max(cfg.MemoryLimitPages, 16), 1
	if cfg.Limits == (cgroup.Limits{}) {
		cfg.Limits = PodLimits(cfg.MemoryLimitPages, 1)
	}
	names := jail.ProbeNames()
	rep := Report{Probes: make([]Probe, len(names))}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := Start(ctx, cfg)
			if err != nil {
				errs[i] = fmt.Errorf("doctor: %w", err)
				return
			}
			defer w.Close(ctx)
			if i == 0 {
				rep.Layers, rep.StartMS = w.Layers(), float64(w.StartDuration().Microseconds())/1000
			}
			req, _ := json.Marshal(wire.ProbeRequest{HostPort: ln.Addr().(*net.TCPAddr).Port, Name: name})
			out, err := w.call(ctx, &FuncSpec{Export: "f", ABI: udf.ABIBatch}, 30*time.Second, req, wire.FlagProbe, nil)
			var ce *CallError
			switch {
			case errors.As(err, &ce) && ce.Violation != nil:
				rep.Probes[i] = Probe{Name: name, Denied: true, Detail: "worker killed: " + ce.Violation.Detail}
			case err != nil:
				errs[i] = fmt.Errorf("doctor: probe %q: %w", name, err)
			default:
				errs[i] = json.Unmarshal(out, &rep.Probes[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Report{}, err
	}
	return rep, nil
}
