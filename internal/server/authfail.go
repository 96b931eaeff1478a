package server

import (
	"context"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/peer"

	"github.com/udfhost/udfhost/audit"
)

// authFailures accounts for refused authentications — of the gRPC API and
// of the upload endpoint's pre-signed URLs — without letting a flood of
// them fill the audit log or hold up audited actions (each record costs an
// fsync). Failures are grouped by source (the peer's IP; an IPv6 /64,
// which one host usually owns whole) and reason, per interval: the first
// burst of a group in an interval are recorded at once, each with its
// client's address, so a few failures show up as promptly and precisely as
// any other record; the rest are counted in memory and recorded as one
// auth.failed record with their count and the times of the first and last
// when the interval ends (flush). Every denial is in some record's count.
// At most max groups are tracked per interval; sources past that are
// folded into one "other" source per reason, so memory and records are
// bounded however many addresses a flood comes from.
type authFailures struct {
	audit *audit.Log
	log   *slog.Logger
	now   func() time.Time
	max   int
	burst int // failures of a group recorded one by one per interval

	mu   sync.Mutex
	seen map[failKey]*failCount // the groups of the current interval
}

type failKey struct{ source, reason string }

// failCount is what a group's next record will say.
type failCount struct {
	recorded    int       // failures recorded one by one this interval
	n           int       // failures not yet in a record
	first, last time.Time // of those n
	resource    string    // the method of the last of them
}

// otherSources is the source of failures from sources past the table's
// bound.
const otherSources = "other"

// maxFailSources bounds the groups tracked per interval, and failBurst
// the failures of a group recorded one by one, and so the records a flood
// can cause: at most failBurst+1 per group per interval, one source's
// flood a handful every 10 s however long it lasts.
const (
	maxFailSources = 256
	failBurst      = 5
)

func newAuthFailures(l *audit.Log, lg *slog.Logger, groups, burst int) *authFailures {
	return &authFailures{audit: l, log: lg, now: time.Now, max: groups, burst: max(burst, 1), seen: map[failKey]*failCount{}}
}

// note accounts for one gRPC call to method refused for reason.
func (a *authFailures) note(ctx context.Context, method, reason string) {
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	a.Deny(ctx, addr, method, reason)
}

// Deny accounts for one request from remote (host:port) refused for
// reason: the first burst of its group in an interval write a record each
// (and wait for it), the others update a counter. It is how the upload
// endpoint (artifacts.Denials) records forged, expired and replayed URLs.
// A nil *authFailures records nothing.
func (a *authFailures) Deny(ctx context.Context, remote, resource, reason string) {
	if a == nil {
		return
	}
	source := sourceOf(remote)
	now := a.now()
	a.mu.Lock()
	k := failKey{source, reason}
	c, ok := a.seen[k]
	if !ok && len(a.seen) >= a.max {
		k.source = otherSources
		c, ok = a.seen[k]
	}
	if !ok {
		c = &failCount{}
		a.seen[k] = c
	}
	if c.recorded >= a.burst {
		if c.n == 0 {
			c.first = now
		}
		c.n++
		c.last, c.resource = now, resource
		a.mu.Unlock()
		return
	}
	c.recorded++
	a.mu.Unlock()
	// The caller may be gone already; the record is written regardless.
	if err := a.audit.Record(context.WithoutCancel(ctx), audit.Event{
		Type: audit.TypeAuthFailed, Actor: remote, Resource: resource, Decision: audit.Deny, Reason: reason,
		Details: map[string]string{"source": k.source, "count": "1", "remote": remote},
	}); err != nil {
		a.log.Error("audit an authentication failure", "source", k.source, "reason", reason, "err", err)
	}
}

// flush records the failures counted in the interval now ending, one
// record per group, and starts a new interval.
func (a *authFailures) flush(ctx context.Context) error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	seen := a.seen
	a.seen = map[failKey]*failCount{}
	a.mu.Unlock()
	keys := make([]failKey, 0, len(seen))
	for k, c := range seen {
		if c.n > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].source != keys[j].source {
			return keys[i].source < keys[j].source
		}
		return keys[i].reason < keys[j].reason
	})
	for _, k := range keys {
		c := seen[k]
		if err := a.audit.Record(ctx, audit.Event{
			Type: audit.TypeAuthFailed, Actor: k.source, Resource: c.resource, Decision: audit.Deny, Reason: k.reason,
			Details: map[string]string{
				"source": k.source,
				"count":  strconv.Itoa(c.n),
				"first":  c.first.UTC().Format(time.RFC3339Nano),
				"last":   c.last.UTC().Format(time.RFC3339Nano),
			},
		}); err != nil {
			return err
		}
	}
	return nil
}

// run flushes every interval until stop is closed.
func (a *authFailures) run(stop <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := a.flush(context.Background()); err != nil {
				a.log.Error("audit authentication failures", "err", err)
			}
		}
	}
}

// sourceOf returns the source a client at addr (host:port) has its
// failures grouped under: its IPv4 address, or its IPv6 /64.
func sourceOf(addr string) string {
	if addr == "" {
		return "unknown"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return host
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
