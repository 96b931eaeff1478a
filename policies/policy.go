// Package policies holds the organisation's environments, networks,
// compute pools and their limits, and principals with their roles, and
// answers what a request may do (the access matrix, docs/POLICY.md).
//
// It runs in the host process (serve, and `udfhost policy check`). It
// trusts the policy file's author, the operator, and nothing a caller
// sends: Load refuses any file it cannot read as exactly the schema, and
// Authorize decides from what the server authenticated. Without a file,
// Default is what serve runs with.
package policies

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
	// MaxPods caps the pool's live pods (one per artifact the pool runs).
	// 0: derived from the host's memory at start (see PodCaps). A new pod
	// past the cap evicts the pool's least recently used idle pod, which
	// is started again from the compiled cache on its next call; when
	// every pod of the pool is busy, the call is refused with
	// RESOURCE_EXHAUSTED and a retry hint.
	MaxPods int
	// EgressTimeout, EgressMaxRequestBytes, EgressMaxResponseBytes and
	// EgressRequestsPerPod bound each request a bound function sends
	// through the egress broker (docs/CONNECTORS.md, "Limits"): its whole
	// round trip, its body, the answer's body, and how many one pod has
	// in flight.
	EgressTimeout          time.Duration
	EgressMaxRequestBytes  int
	EgressMaxResponseBytes int
	EgressRequestsPerPod   int
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
	// Principals are the callers the policy knows; Networks where they
	// call from (the public network always exists).
	Principals []*Principal
	Networks   map[string]*Network
	// Connections are the egress grants, keyed by Env + "/" + Name
	// (connection.go).
	Connections map[string]*Connection
	// MaxLivePods caps live pods host-wide, whatever their pool, as
	// Pool.MaxPods does per pool. 0: derived from the host's memory at
	// start (see PodCaps).
	MaxLivePods int
	// File is the policy file's name as given to Load, and FileSHA256 the
	// hex sha256 of its content; both "" for Default.
	File       string
	FileSHA256 string
	// visibilityAt is where the file sets each environment's visibility,
	// for CheckServed's errors.
	visibilityAt map[string]at
}

// at is a place in the policy file: a node's position and field path.
type at struct {
	line, col int
	path      string
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
			// The broker's own defaults (internal/egress).
			EgressTimeout:          5 * time.Second,
			EgressMaxRequestBytes:  1 << 20,
			EgressMaxResponseBytes: 4 << 20,
			EgressRequestsPerPod:   8,
		}},
		Edge:     DefaultEdge(),
		Networks: map[string]*Network{PublicNetwork: {Name: PublicNetwork}},
	}
}

// Env returns the named environment.
func (p *Policy) Env(name string) (*Environment, error) {
	e, ok := p.Environments[name]
	if !ok {
		return nil, fmt.Errorf("environment %q %w", name, ErrNotFound)
	}
	return e, nil
}

// Pool returns the named pool of env; pools are never shared across
// environments.
func (p *Policy) Pool(env, name string) (*Pool, error) {
	pl, ok := p.Pools[env+"/"+name]
	if !ok {
		return nil, fmt.Errorf("compute pool %q in environment %q %w", name, env, ErrNotFound)
	}
	return pl, nil
}

// MaxMessageBytes is the largest gRPC message the server receives or
// sends (grpc.MaxRecvMsgSize and MaxSendMsgSize). A response can be that
// large, so a client must raise its receive limit (commonly 4 MiB) to it.
const MaxMessageBytes = 80 << 20

// StreamWindow bounds the batches of one InvokeStream processed at once;
// answers still go out in request order.
const StreamWindow = 16

// memoryShare is the part of the host's memory the pods' cgroup limits
// may add up to; the rest is the host process's, the page cache's and
// the system's.
const memoryShare = 0.75

// PodCaps returns the caps on live pods for a host with memTotal bytes of
// memory, podBytes being the memory limit of one pod of a pool (its
// cgroup limit). A cap set in the policy is kept; a zero one is derived
// so that the pods' limits add up to at most 3/4 of memTotal: host-wide
// with the largest pod of any pool, per pool with the pool's own (never
// more than the host's), at least 1. memTotal <= 0 (unknown) derives no
// cap. perPool is keyed like Pools.
func (p *Policy) PodCaps(memTotal int64, podBytes func(*Pool) int64) (host int, perPool map[string]int) {
	derive := func(per int64) int {
		if memTotal <= 0 || per <= 0 {
			return 0
		}
		return max(1, int(float64(memTotal)*memoryShare/float64(per)))
	}
	var largest int64
	for _, pl := range p.Pools {
		largest = max(largest, podBytes(pl))
	}
	host = p.MaxLivePods
	if host <= 0 {
		host = derive(largest)
	}
	perPool = map[string]int{}
	for key, pl := range p.Pools {
		n := pl.MaxPods
		if n <= 0 {
			n = derive(podBytes(pl))
			if host > 0 && (n == 0 || n > host) {
				n = host
			}
		}
		perPool[key] = n
	}
	return host, perPool
}

// ReadMemTotal returns MemTotal of a /proc/meminfo file, in bytes.
func ReadMemTotal(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read host memory: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb <= 0 {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("read host memory: %s has no MemTotal line in kB", path)
}

// Summary describes p in one line, e.g. "org acme: 2 environments (1
// private), 2 networks, 2 pools, 4 principals".
func (p *Policy) Summary() string {
	private := 0
	for _, e := range p.Environments {
		if e.Visibility == Private {
			private++
		}
	}
	s := fmt.Sprintf("org %s: %s (%d private), %s, %s, %s", p.Org,
		plural(len(p.Environments), "environment"), private, plural(len(p.Networks), "network"),
		plural(len(p.Pools), "pool"), plural(len(p.Principals), "principal"))
	if len(p.Connections) > 0 {
		s += ", " + plural(len(p.Connections), "connection")
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
