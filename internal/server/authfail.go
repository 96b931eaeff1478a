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

// authFailures accounts for refused authentications without letting a
// flood of them fill the audit log or hold up audited actions (each record
// costs an fsync). Failures are grouped by source (the peer's IP; an IPv6
// /64, which one host usually owns whole) and reason, per interval: the
// first of a group in an interval is recorded at once, so a single failure
// shows up as promptly as any other record, and the rest are counted in
// memory and recorded as one auth.failed record with their count and the
// times of the first and last when the interval ends (flush). Every denial
// is in some record's count. At most max groups are tracked per interval;
// sources past that are folded into one "other" source per reason, so
// memory is bounded however many addresses a flood comes from.
type authFailures struct {
	audit *audit.Log
	log   *slog.Logger
	now   func() time.Time
	max   int

	mu   sync.Mutex
	seen map[failKey]*failCount // the groups of the current interval
}

type failKey struct{ source, reason string }

// failCount is what a group's next record will say.
type failCount struct {
	n           int       // failures not yet in a record
	first, last time.Time // of those n
	resource    string    // the method of the last of them
}

// otherSources is the source of failures from sources past the table's
// bound.
const otherSources = "other"

// maxFailSources bounds the groups tracked per interval, and so the
// records a flood can cause: at most two per group per interval (the first
// failure and the count), about 500 records every 10 s however many
// addresses it comes from.
const maxFailSources = 256

func newAuthFailures(l *audit.Log, lg *slog.Logger, max int) *authFailures {
	return &authFailures{audit: l, log: lg, now: time.Now, max: max, seen: map[failKey]*failCount{}}
}

// note accounts for one call refused for reason. Only the first of its
// group in an interval writes a record (and waits for it); the others
// update a counter. A nil *authFailures records nothing.
func (a *authFailures) note(ctx context.Context, method, reason string) {
	if a == nil {
		return
	}
	addr, source := peerSource(ctx)
	now := a.now()
	a.mu.Lock()
	k := failKey{source, reason}
	c, ok := a.seen[k]
	if !ok && len(a.seen) >= a.max {
		k.source = otherSources
		c, ok = a.seen[k]
	}
	if ok {
		if c.n == 0 {
			c.first = now
		}
		c.n++
		c.last, c.resource = now, method
		a.mu.Unlock()
		return
	}
	a.seen[k] = &failCount{}
	a.mu.Unlock()
	// The caller may be gone already; the record is written regardless.
	if err := a.audit.Record(context.WithoutCancel(ctx), audit.Event{
		Type: audit.TypeAuthFailed, Actor: addr, Resource: method, Decision: audit.Deny, Reason: reason,
		Details: map[string]string{"source": k.source, "count": "1"},
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

// peerSource returns the caller's address and the source its failures are
// grouped under.
func peerSource(ctx context.Context) (addr, source string) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "", "unknown"
	}
	addr = p.Addr.String()
	tcp, ok := p.Addr.(*net.TCPAddr)
	if !ok {
		return addr, addr
	}
	if ip4 := tcp.IP.To4(); ip4 != nil {
		return addr, ip4.String()
	}
	return addr, tcp.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
