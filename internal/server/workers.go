package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/sandbox"
)

// identity is the pod a function runs in.
func (s *Server) identity(f *functions.Function) pods.Identity {
	return pods.Identity{Org: s.policy.Org, Env: f.Env, Pool: f.Pool, Digest: f.Digest}
}

// startWorker returns how the pod registry starts a worker: the module is
// re-read and its digest re-checked, the pool's limits applied, and the
// start audited with the identity and the layers the worker reports.
func (s *Server) startWorker(cacheDir string) pods.StartFunc {
	return func(ctx context.Context, id pods.Identity) (*sandbox.Worker, error) {
		pool, err := s.policy.Pool(id.Env, id.Pool)
		if err != nil {
			return nil, err
		}
		wasm, err := s.store.Module(ctx, id.Digest)
		if err != nil {
			return nil, fmt.Errorf("load module for %s: %w", id, err)
		}
		w, err := s.spares.Start(ctx, sandbox.Config{
			Identity:         id.SPIFFEID(),
			Module:           wasm,
			MemoryLimitPages: pool.MemoryLimitPages,
			MaxInstances:     pool.InstancesPerWorker,
			MaxInFlight:      pool.InstancesPerWorker + pool.QueuePerWorker,
			PreciseInterrupt: pool.Interrupt == policies.InterruptWasm,
			CacheDir:         cacheDir,
			Exe:              s.cfg.WorkerExe,
			Args:             s.cfg.WorkerArgs,
			Stderr:           s.cfg.WorkerStderr,
		})
		if err != nil {
			s.audit.Record(ctx, audit.Event{
				Type: audit.TypeWorkerStarted, Actor: "udfhost", Pod: id.SPIFFEID(), Decision: audit.Error, Reason: err.Error(),
			})
			return nil, fmt.Errorf("%w: %v", errInvalid, err)
		}
		var active []string
		for _, l := range w.Layers() {
			if l.Active {
				active = append(active, l.Name)
			}
		}
		if err := s.audit.Record(ctx, audit.Event{
			Type: audit.TypeWorkerStarted, Actor: "udfhost", Pod: id.SPIFFEID(), Decision: audit.Allow,
			Details: map[string]string{
				"pid":     strconv.Itoa(w.PID()),
				"layers":  strings.Join(active, ","),
				"load_ms": strconv.FormatFloat(float64(w.LoadDuration().Microseconds())/1000, 'f', 1, 64),
			},
		}); err != nil {
			w.Close(ctx) // fail closed: an unaudited worker does not serve
			return nil, err
		}
		s.log.Info("worker started", "pod", id.SPIFFEID(), "pid", w.PID(), "layers", strings.Join(active, ","), "load", w.LoadDuration())
		return w, nil
	}
}

func (s *Server) workerExited(id pods.Identity, w *sandbox.Worker, err error) {
	e := audit.Event{
		Type: audit.TypeWorkerStopped, Actor: "udfhost", Pod: id.SPIFFEID(), Decision: audit.Allow,
		Details: map[string]string{"pid": strconv.Itoa(w.PID())},
	}
	if err != nil {
		e.Decision, e.Reason = audit.Error, err.Error()
	}
	s.audit.Record(context.Background(), e)
	s.log.Info("worker stopped", "pod", id.SPIFFEID(), "pid", w.PID(), "err", err)
}

// checkSandbox runs the doctor's probes in a jailed worker at start, logs
// which layers are active and what the probes could still do, and audits
// it: operators see what isolation they have, measured, not assumed.
func (s *Server) checkSandbox(ctx context.Context) {
	rep, err := sandbox.Doctor(ctx, sandbox.Config{Exe: s.cfg.WorkerExe, Args: s.cfg.WorkerArgs, Stderr: s.cfg.WorkerStderr})
	if err != nil {
		s.log.Error("sandbox check failed", "err", err)
		s.audit.Record(ctx, audit.Event{Type: audit.TypeSandboxLayers, Actor: "udfhost", Decision: audit.Error, Reason: err.Error()})
		return
	}
	var active, inactive, allowed []string
	for _, l := range rep.Layers {
		if l.Active {
			active = append(active, l.Name)
		} else {
			inactive = append(inactive, l.Name)
		}
	}
	for _, p := range rep.Probes {
		if !p.Denied {
			allowed = append(allowed, p.Name)
		}
	}
	s.log.Info("sandbox layers", "active", strings.Join(active, ","), "inactive", strings.Join(inactive, ","),
		"probes_not_denied", strings.Join(allowed, "; "))
	s.audit.Record(ctx, audit.Event{
		Type: audit.TypeSandboxLayers, Actor: "udfhost", Decision: audit.Allow,
		Details: map[string]string{
			"active": strings.Join(active, ","), "inactive": strings.Join(inactive, ","),
			"probes_not_denied": strings.Join(allowed, "; "),
		},
	})
}
