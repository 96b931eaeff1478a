package egress

import (
	"fmt"
	"sync"
	"time"
)

// Limits bound one request and the broker's concurrency. A zero field
// takes its default.
type Limits struct {
	// MaxRequestBytes bounds a request's body; default 1 MiB.
	MaxRequestBytes int
	// MaxResponseBytes bounds a response's body; default 4 MiB. The
	// body is read through a limit: a destination sending more is cut
	// off, not buffered.
	MaxResponseBytes int
	// Timeout covers resolving, connecting, the TLS handshake, sending
	// and reading the whole response; default 5s. The caller's context
	// (the batch's deadline) applies too: whichever ends first.
	Timeout time.Duration
	// PerPodConcurrency bounds the requests one pod has in flight;
	// default 8.
	PerPodConcurrency int
	// MaxConcurrency bounds the requests of all pods; default 256.
	MaxConcurrency int
}

// Defaults.
const (
	DefaultMaxRequestBytes   = 1 << 20
	DefaultMaxResponseBytes  = 4 << 20
	DefaultTimeout           = 5 * time.Second
	DefaultPerPodConcurrency = 8
	DefaultMaxConcurrency    = 256
)

// retryHint is what an overloaded caller is told to wait: about the time
// a typical request holds its slot.
const retryHint = 100 * time.Millisecond

// over returns l with every zero field taken from base.
func (l Limits) over(base Limits) Limits {
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = base.MaxRequestBytes
	}
	if l.MaxResponseBytes <= 0 {
		l.MaxResponseBytes = base.MaxResponseBytes
	}
	if l.Timeout <= 0 {
		l.Timeout = base.Timeout
	}
	if l.PerPodConcurrency <= 0 {
		l.PerPodConcurrency = base.PerPodConcurrency
	}
	l.MaxConcurrency = base.MaxConcurrency
	return l
}

func (l Limits) withDefaults() Limits {
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if l.MaxResponseBytes <= 0 {
		l.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.PerPodConcurrency <= 0 {
		l.PerPodConcurrency = DefaultPerPodConcurrency
	}
	if l.MaxConcurrency <= 0 {
		l.MaxConcurrency = DefaultMaxConcurrency
	}
	return l
}

// gate counts requests in flight, per pod and in all. It never queues: a
// full gate refuses at once, so a flooding guest spends nothing but its
// own refusals.
type gate struct {
	perPod, total int
	mu            sync.Mutex
	pods          map[string]int
	all           int
}

func newGate(l Limits) *gate {
	return &gate{perPod: l.PerPodConcurrency, total: l.MaxConcurrency, pods: map[string]int{}}
}

// acquire takes a slot for pod, or says which limit is full (shared:
// the broker-wide one).
func (g *gate) acquire(pod string, perPod int) (release func(), shared bool, err error) {
	if perPod <= 0 {
		perPod = g.perPod
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.pods[pod] >= perPod:
		return nil, false, fmt.Errorf("the pod has %d requests in flight, its limit", g.pods[pod])
	case g.all >= g.total:
		return nil, true, fmt.Errorf("the broker has %d requests in flight, its limit", g.all)
	}
	g.pods[pod]++
	g.all++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.all--
			if g.pods[pod]--; g.pods[pod] == 0 {
				delete(g.pods, pod)
			}
		})
	}, false, nil
}
