package policies

import (
	"fmt"
	"math"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// poolLimit is one limit a policy file may set on a pool: its key, its
// range, and where it goes. A limit the file leaves out keeps the value
// of Default()'s pool.
type poolLimit struct {
	key string
	// An integer limit: min..max, in unit.
	min, max int64
	unit     string
	setInt   func(*Pool, int64)
	// A duration limit: minD..maxD.
	minD, maxD time.Duration
	setDur     func(*Pool, time.Duration)
}

// The ranges are what the server can honour: a wasm32 memory is at most
// 65536 pages (4 GiB); a batch, and its result, must fit a gRPC message
// (MaxMessageBytes) with room for the envelope; the rest bound what one
// pool may hold of the host.
var poolLimits = []poolLimit{
	{key: "memory_pages", min: 1, max: 65536, unit: "64 KiB pages", setInt: func(p *Pool, v int64) { p.MemoryLimitPages = uint32(v) }},
	{key: "batch_deadline", minD: time.Millisecond, maxD: 10 * time.Minute, setDur: func(p *Pool, v time.Duration) { p.BatchDeadline = v }},
	{key: "instances_per_worker", min: 1, max: 64, unit: "batches", setInt: func(p *Pool, v int64) { p.InstancesPerWorker = int(v) }},
	{key: "queue_per_worker", min: 0, max: 4096, unit: "batches", setInt: func(p *Pool, v int64) { p.QueuePerWorker = int(v) }},
	{key: "max_batch_rows", min: 1, max: 1 << 24, unit: "rows", setInt: func(p *Pool, v int64) { p.MaxBatchRows = int(v) }},
	{key: "max_batch_bytes", min: 1 << 10, max: 64 << 20, unit: "bytes", setInt: func(p *Pool, v int64) { p.MaxBatchBytes = int(v) }},
	{key: "max_artifact_bytes", min: 1 << 10, max: 1 << 30, unit: "bytes", setInt: func(p *Pool, v int64) { p.MaxArtifactBytes = v }},
	{key: "quarantine_after", min: 0, max: 1000, unit: "violations; 0 disables quarantine", setInt: func(p *Pool, v int64) { p.QuarantineAfter = int(v) }},
	{key: "quarantine_window", minD: 0, maxD: 30 * 24 * time.Hour, setDur: func(p *Pool, v time.Duration) { p.QuarantineWindow = v }},
	{key: "max_pods", min: 0, max: 4096, unit: "pods; 0 derives the cap from the host's memory", setInt: func(p *Pool, v int64) { p.MaxPods = int(v) }},
	// Request and response bodies must fit the worker's egress frames (16 MiB).
	{key: "egress_timeout", minD: time.Millisecond, maxD: 5 * time.Minute, setDur: func(p *Pool, v time.Duration) { p.EgressTimeout = v }},
	{key: "egress_max_request_bytes", min: 1, max: 16 << 20, unit: "bytes", setInt: func(p *Pool, v int64) { p.EgressMaxRequestBytes = int(v) }},
	{key: "egress_max_response_bytes", min: 1 << 10, max: 16 << 20, unit: "bytes", setInt: func(p *Pool, v int64) { p.EgressMaxResponseBytes = int(v) }},
	{key: "egress_requests_per_pod", min: 1, max: 1024, unit: "requests", setInt: func(p *Pool, v int64) { p.EgressRequestsPerPod = int(v) }},
}

// set decodes n as this limit and stores it in pl.
func (l *poolLimit) set(d *doc, pl *Pool, n ast.Node, path string) error {
	if l.setDur != nil {
		s, err := d.str(n, path)
		if err != nil {
			return err
		}
		v, perr := time.ParseDuration(s)
		if perr != nil {
			return d.errAt(n, "%s: %q is not a duration; write e.g. 500ms, 2s or 10m", path, s)
		}
		if v < l.minD || v > l.maxD {
			return d.errAt(n, "%s: %s is out of range %s", path, v, l.rangeText())
		}
		l.setDur(pl, v)
		return nil
	}
	v, err := d.integer(n, path)
	if err != nil {
		return err
	}
	if v < l.min || v > l.max {
		return d.errAt(n, "%s: %d is out of range %s (%s)", path, v, l.rangeText(), l.unit)
	}
	l.setInt(pl, v)
	return nil
}

// integer returns an integer scalar.
func (d *doc) integer(n ast.Node, path string) (int64, error) {
	iv, ok := d.resolve(n).(*ast.IntegerNode)
	if !ok {
		return 0, d.errAt(n, "%s: want an integer, got %s", path, kindOf(d.resolve(n)))
	}
	switch v := iv.Value.(type) {
	case int64:
		return v, nil
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), nil
		}
	}
	return 0, d.errAt(n, "%s: %s is not a 64-bit integer", path, iv.Token.Value)
}

// poolKeys are the fields of a pool entry.
func poolKeys() []string {
	keys := []string{"name", "environment", "interrupt"}
	for _, l := range poolLimits {
		keys = append(keys, l.key)
	}
	return keys
}

// defaultPool is the pool every limit a file leaves out is taken from.
func defaultPool() Pool {
	return *Default().Pools["default/default"]
}

// rangeText is the limit's range as messages and docs/POLICY.md show it.
func (l *poolLimit) rangeText() string {
	if l.setDur != nil {
		return fmt.Sprintf("%s..%s", l.minD, l.maxD)
	}
	return fmt.Sprintf("%d..%d", l.min, l.max)
}
