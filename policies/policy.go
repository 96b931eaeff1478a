// Package policies holds the organisation's environments, compute pools and
// their limits, and answers what a request may do.
//
// A policy file (YAML, validated at start) and the public/private access
// matrix come in a later issue; until then Default is what serve runs with.
package policies

import (
	"errors"
	"fmt"
	"time"
)

// Visibility of an environment. Turning one private is irreversible.
type Visibility string

// Visibilities.
const (
	Public  Visibility = "public"
	Private Visibility = "private"
)

// Interrupt selects how runaway batches are stopped.
type Interrupt string

// Interrupt modes.
const (
	InterruptProcess Interrupt = "process"
	InterruptWasm    Interrupt = "wasm"
)

// ErrNotFound is returned for an unknown environment or pool.
var ErrNotFound = errors.New("not found")

// Environment groups functions and artifacts under one visibility.
type Environment struct {
	Name       string
	Visibility Visibility
}

// Pool is a compute pool: single-tenant, in exactly one environment, with the
// limits every worker of the pool runs under.
type Pool struct {
	Name string
	Env  string
	// MemoryLimitPages caps each guest instance's linear memory (64 KiB pages).
	MemoryLimitPages uint32
	// BatchDeadline is how long one batch may run before it is interrupted.
	BatchDeadline time.Duration
	// InstancesPerWorker is how many batches one worker runs at once.
	InstancesPerWorker int
	// Interrupt is how a batch past its deadline is stopped: InterruptProcess
	// kills the pod's worker at the deadline (no cost until then; the pod's
	// other in-flight batches are retried once on its replacement), while
	// InterruptWasm has wazero check for cancellation on every loop
	// back-edge (WithCloseOnContextDone: only the offending instance is
	// discarded, but loop-heavy guests run ~3.5x slower; see
	// docs/BENCHMARKS.md).
	Interrupt Interrupt
	// QueuePerWorker is how many more batches may wait for a worker; past
	// that, calls are refused with RESOURCE_EXHAUSTED and a retry hint
	// instead of queueing without limit.
	QueuePerWorker int
	// MaxBatchRows and MaxBatchBytes bound one request.
	MaxBatchRows  int
	MaxBatchBytes int
	// MaxArtifactBytes bounds an upload.
	MaxArtifactBytes int64
	// QuarantineAfter sandbox violations (deadline exceeded, worker
	// killed, bad output; not traps or row errors, which user data can
	// cause) by one artifact within QuarantineWindow (0: no time limit)
	// quarantine it: its functions are refused until an admin releases
	// it. QuarantineAfter 0 disables quarantine.
	QuarantineAfter  int
	QuarantineWindow time.Duration
}

// Edge bounds what the server's gRPC edge holds for its callers, whichever
// pool they call. Zero fields take the defaults of DefaultEdge.
type Edge struct {
	// RequestTimeout is how long an Invoke call, or a new InvokeStream,
	// may take to deliver its (first) request once opened, and
	// StreamIdleTimeout how long an InvokeStream with no batch in flight
	// may take to deliver its next one. Past either the call ends
	// (streams with UNAVAILABLE: open a new one), because a caller that
	// announces a message and stalls would otherwise hold its stream,
	// buffers and admission budget forever.
	RequestTimeout    time.Duration
	StreamIdleTimeout time.Duration
	// MaxStreamsPerConn caps concurrent calls on one HTTP/2 connection;
	// the client queues the rest, so their messages are not sent.
	MaxStreamsPerConn uint32
	// MaxStreams caps InvokeStream calls open at once, server-wide.
	MaxStreams int
	// MaxInflightBytes bounds the request bytes of invocations being read
	// or run, server-wide. An Invoke call that would exceed it is refused
	// with RESOURCE_EXHAUSTED before its message is read (its size is
	// estimated from recent ones); a stream's batch, after.
	MaxInflightBytes int64
}

// DefaultEdge is the Edge a zero field falls back to.
func DefaultEdge() Edge {
	return Edge{
		RequestTimeout:    5 * time.Second,
		StreamIdleTimeout: time.Minute,
		MaxStreamsPerConn: 256,
		MaxStreams:        1024,
		MaxInflightBytes:  64 << 20,
	}
}

// WithDefaults returns e with every zero field taken from DefaultEdge.
func (e Edge) WithDefaults() Edge {
	d := DefaultEdge()
	if e.RequestTimeout <= 0 {
		e.RequestTimeout = d.RequestTimeout
	}
	if e.StreamIdleTimeout <= 0 {
		e.StreamIdleTimeout = d.StreamIdleTimeout
	}
	if e.MaxStreamsPerConn == 0 {
		e.MaxStreamsPerConn = d.MaxStreamsPerConn
	}
	if e.MaxStreams <= 0 {
		e.MaxStreams = d.MaxStreams
	}
	if e.MaxInflightBytes <= 0 {
		e.MaxInflightBytes = d.MaxInflightBytes
	}
	return e
}

// Policy is the whole configuration of one organisation.
type Policy struct {
	Org          string
	Environments map[string]*Environment
	Pools        map[string]*Pool // keyed by Env + "/" + Name
	Edge         Edge
}

// Default is the embedded policy: org "default", public environment
// "default", compute pool "default".
func Default() *Policy {
	return &Policy{
		Org:          "default",
		Environments: map[string]*Environment{"default": {Name: "default", Visibility: Public}},
		Pools: map[string]*Pool{"default/default": {
			Name:               "default",
			Env:                "default",
			MemoryLimitPages:   4096, // 256 MiB
			BatchDeadline:      2 * time.Second,
			InstancesPerWorker: 2,
			Interrupt:          InterruptProcess,
			QueuePerWorker:     62,
			MaxBatchRows:       1 << 20,
			MaxBatchBytes:      64 << 20,
			MaxArtifactBytes:   100 << 20,
			QuarantineAfter:    3,
			QuarantineWindow:   10 * time.Minute,
		}},
		Edge: DefaultEdge(),
	}
}

// Env returns the named environment.
func (p *Policy) Env(name string) (*Environment, error) {
	e, ok := p.Environments[name]
	if !ok {
		return nil, fmt.Errorf("environment %q: %w", name, ErrNotFound)
	}
	return e, nil
}

// Pool returns the named pool of env; pools are never shared across
// environments.
func (p *Policy) Pool(env, name string) (*Pool, error) {
	pl, ok := p.Pools[env+"/"+name]
	if !ok {
		return nil, fmt.Errorf("compute pool %q in environment %q: %w", name, env, ErrNotFound)
	}
	return pl, nil
}
