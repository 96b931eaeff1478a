package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/cgroup"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/sandbox"
)

// identity is the pod a function runs in. The org cannot change on
// reload (checkFixed).
func (s *Server) identity(f *functions.Function) pods.Identity {
	return pods.Identity{Org: s.policy.Load().Org, Env: f.Env, Pool: f.Pool, Digest: f.Digest}
}

// startWorker returns how the pod registry starts a worker: the module is
// re-read and its digest re-checked, the pool's limits applied, and the
// start audited with the identity and the layers the worker reports. The
// limits are the pool's in the policy current when the worker starts: a
// reload changes those of the workers started after it, not live ones.
func (s *Server) startWorker(cacheDir string) pods.StartFunc {
	return func(ctx context.Context, id pods.Identity) (*sandbox.Worker, error) {
		pool, err := s.policy.Load().Pool(id.Env, id.Pool)
		if err != nil {
			return nil, err
		}
		wasm, err := s.store.Module(ctx, id.Digest, id.SPIFFEID())
		if err != nil {
			return nil, fmt.Errorf("load module for %s: %w", id, err)
		}
		cfg := s.workerBase
		cfg.Identity, cfg.Module = id.SPIFFEID(), wasm
		cfg.MemoryLimitPages, cfg.MaxInstances = pool.MemoryLimitPages, pool.InstancesPerWorker
		cfg.MaxInFlight = pool.InstancesPerWorker + pool.QueuePerWorker
		cfg.PreciseInterrupt = pool.Interrupt == policies.InterruptWasm
		cfg.Limits = sandbox.PodLimits(pool.MemoryLimitPages, pool.InstancesPerWorker)
		cfg.InitDeadline = pool.BatchDeadline
		cfg.MaxOutputBytes = int64(pool.MaxBatchBytes)
		// This artifact's own cache: a jailed worker is given a copy of it.
		cfg.CacheDir = artifacts.CacheDirFor(cacheDir, id.Digest)
		w, err := s.spares.Start(ctx, cfg)
		if err != nil {
			s.audit.Record(ctx, audit.Event{
				Type: audit.TypeWorkerStarted, Actor: "udfhost", Pod: id.SPIFFEID(), Decision: audit.Error, Reason: err.Error(),
			})
			return nil, startError(err)
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

// startError classes a failed worker start: the module's fault (it does
// not load, or its start function overran its deadline, under the pool's
// limits) is the caller's to fix, INVALID_ARGUMENT; anything else — no
// socket, no exec, no free uid block, no cgroup, a jail layer missing —
// is the host's, UNAVAILABLE and worth retrying.
func startError(err error) error {
	if errors.Is(err, sandbox.ErrModule) || errors.Is(err, sandbox.ErrTimeout) || errors.Is(err, sandbox.ErrCompile) {
		return &classedError{class: errBadModule, err: err}
	}
	return &classedError{class: errWorkerStart, err: err}
}

func (s *Server) workerExited(id pods.Identity, w *sandbox.Worker, why pods.StopReason, err error) {
	e := audit.Event{
		Type: audit.TypeWorkerStopped, Actor: "udfhost", Pod: id.SPIFFEID(), Decision: audit.Allow,
		Reason: string(why), Details: map[string]string{"pid": strconv.Itoa(w.PID())},
	}
	if err != nil {
		e.Decision, e.Reason = audit.Error, string(why)+": "+err.Error()
	}
	s.audit.Record(context.Background(), e)
	s.log.Info("worker stopped", "pod", id.SPIFFEID(), "pid", w.PID(), "reason", why, "err", err)
}

// newPods returns the pod registry with the policy's caps on live pods,
// those left at 0 derived from memTotal (bytes; <= 0: unknown, no derived
// cap), and refusals at a cap audited. The per-pool caps follow reloads
// (updatePoolCaps); the host-wide one is fixed at start.
func (s *Server) newPods(cacheDir string, memTotal int64) *pods.Registry {
	host := s.updatePoolCaps(s.policy.Load(), memTotal)
	caps := pods.Caps{
		MaxLive: host,
		PoolMax: func(id pods.Identity) int { return (*s.poolCaps.Load())[id.Env+"/"+id.Pool] },
		Refused: func(id pods.Identity, err *pods.CapError) {
			s.audit.Record(context.Background(), audit.Event{
				Type: audit.TypeWorkerStarted, Actor: "udfhost", Pod: id.SPIFFEID(), Decision: audit.Deny, Reason: err.Error(),
				Details: map[string]string{"live": strconv.Itoa(err.Live), "cap": strconv.Itoa(err.Max)},
			})
		},
	}
	return pods.New(s.startWorker(cacheDir), s.workerExited, caps)
}

// hostMemory is the host's memory in bytes, read once at start; 0 if it
// cannot be read (no cap is then derived from it).
func (s *Server) hostMemory() int64 {
	n, err := policies.ReadMemTotal("/proc/meminfo")
	if err != nil {
		s.log.Warn("no pod caps derived from memory", "err", err)
		return 0
	}
	return n
}

// checkSandbox runs the doctor's probes in jailed workers at start, logs
// which layers are active and what the probes could still do, and audits
// it with the seccomp profile's hash: operators see what isolation they
// have, measured, not assumed. In strict mode a missing layer or a probe
// that was not denied stops the server from starting.
func (s *Server) checkSandbox(ctx context.Context) error {
	rep, err := sandbox.Doctor(ctx, s.probeConfig())
	if err != nil {
		s.log.Error("sandbox check failed", "err", err)
		s.audit.Record(ctx, audit.Event{Type: audit.TypeSandboxLayers, Actor: "udfhost", Decision: audit.Error, Reason: err.Error(),
			Details: map[string]string{"seccomp_profile": sandbox.SeccompProfileHash()}})
		if s.workerBase.Strict {
			return fmt.Errorf("sandbox check: %w", err)
		}
		return nil
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
	decision := audit.Allow
	if len(inactive)+len(allowed) > 0 {
		decision = audit.Error
	}
	if err := s.audit.Record(ctx, audit.Event{
		Type: audit.TypeSandboxLayers, Actor: "udfhost", Decision: decision,
		Details: map[string]string{
			"active": strings.Join(active, ","), "inactive": strings.Join(inactive, ","),
			"probes_not_denied": strings.Join(allowed, "; "),
			"seccomp_profile":   sandbox.SeccompProfileHash(),
			"worker_start_ms":   strconv.FormatFloat(rep.StartMS, 'f', 1, 64),
		},
	}); err != nil {
		return err
	}
	if s.workerBase.Strict && len(allowed) > 0 {
		return fmt.Errorf("%w: strict mode: probes not denied inside a jailed worker: %s", sandbox.ErrLayerMissing, strings.Join(allowed, "; "))
	}
	return nil
}

// precompile returns the artifact store's compile step: wazero's
// optimizing compiler, the costliest code an upload reaches, runs in a
// jailed compile-only worker with a time and memory bound, never in the
// host process. What it cannot compile is the module's fault.
func (s *Server) precompile(precise bool) func(ctx context.Context, wasm []byte, dir string) error {
	return func(ctx context.Context, wasm []byte, dir string) error {
		cfg := s.workerBase
		cfg.Identity, cfg.Module, cfg.CacheDir = "spiffe://udfhost.local/validator", wasm, dir
		// The pool's memory limit is checked when a pod starts; here the
		// module only has to compile (the limit is not in the cache key).
		cfg.MemoryLimitPages, cfg.MaxInstances, cfg.PreciseInterrupt = 65536, 1, precise
		cfg.Limits = cgroup.Limits{MemoryBytes: 1 << 30, Pids: 256, CPUQuota: 1}
		cfg.StartTimeout = 2 * time.Minute
		err := sandbox.Precompile(ctx, cfg)
		if errors.Is(err, sandbox.ErrCompile) {
			return fmt.Errorf("%w: %v", artifacts.ErrInvalidModule, err)
		}
		return err
	}
}
