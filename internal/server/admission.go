package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"

	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// admission bounds the memory that callers can make the server hold
// (policies.Edge). gRPC reads a whole request before any handler or
// interceptor runs, so shedding a call in the handler is too late: its
// bytes are already in memory. admission's tap runs when a call's headers
// arrive, before its message is read, and refuses an Invoke that would
// take the request bytes in flight past the budget; the client keeps the
// unsent message.
//
// An unread request is reserved at an estimate of its size: the moving
// average of its connection's recent requests, starting high for a new
// connection so that a burst on it cannot overshoot; once read it is
// accounted at its real size. Up to half the budget, calls are admitted in
// arrival order. Past it, only a connection holding less than its share of
// that half (split between the connections with bytes in flight) is, or
// one with nothing in flight at all, so one caller flooding the server
// cannot starve the others. A nil *admission admits everything.
type admission struct {
	edge policies.Edge
	// auth, if set, authenticates a call from its headers before
	// anything else: a refused call reserves nothing and its message is
	// never read.
	auth    func(context.Context, *tap.Info) error
	streams atomic.Int64 // InvokeStreams open
	// avgNanos is a moving average of Invoke durations, the retry hint.
	avgNanos atomic.Int64

	mu       sync.Mutex
	total    int64                // request bytes reserved by invocations in flight
	conns    map[string]*connLoad // connections with bytes in flight
	open     map[string]int       // calls open per connection to methods anyone may call
	openAnon int                  // the same, server-wide
}

// connLoad is one connection's share of admission.
type connLoad struct {
	held int64 // request bytes reserved by its calls in flight
	est  int64 // what its next unread request reserves
}

const (
	// firstEstimate is what an unread request reserves on a connection
	// with nothing in flight: pessimistic, so a burst of calls on a new
	// connection is admitted slowly until their sizes are known.
	firstEstimate = 1 << 20
	// minEstimate keeps the number of unread calls admitted at once
	// bounded however small a connection's requests.
	minEstimate = 64 << 10
	// maxOpenPerConn caps the calls open at once on one connection to
	// the methods anyone may call (health, reflection): they need no
	// token, and gRPC reads any message up to its receive limit (80 MiB)
	// for them, so without a cap one anonymous connection could make the
	// server hold that times its stream limit. A prober or a client's
	// health watch needs one or two.
	maxOpenPerConn = 4
	// maxOpenAnonymous caps them server-wide, so that many connections
	// cannot multiply the per-connection cap either: what anonymous
	// callers can make the server hold is at most this many messages of
	// the receive limit.
	maxOpenAnonymous = 8
	// maxHeaderListBytes bounds one call's metadata: an authorization
	// header, tracing and a few more fit many times over.
	maxHeaderListBytes = 16 << 10
)

func newAdmission(e policies.Edge) *admission {
	a := &admission{edge: e.WithDefaults(), conns: map[string]*connLoad{}, open: map[string]int{}}
	a.avgNanos.Store(int64(100 * time.Millisecond))
	return a
}

// serverOptions are the gRPC server options that enforce a's Edge: the
// tap, the per-connection stream cap, fixed flow-control windows (gRPC's
// default grows them up to 16 MiB per stream and connection, all of which
// a client may fill with messages nobody has asked for), and keepalive,
// so connections of vanished peers are closed and pings cannot be used
// to keep a flood of idle connections busy.
func (a *admission) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InTapHandle(a.tap),
		grpc.MaxConcurrentStreams(a.edge.MaxStreamsPerConn),
		// Headers arrive before the tap can authenticate anything: gRPC's
		// default lets one stream's headers be 16 MiB (it is moving to
		// 8 KiB upstream), which any anonymous caller could make the
		// server decode and hold on every stream.
		grpc.MaxHeaderListSize(maxHeaderListBytes),
		grpc.InitialWindowSize(256 << 10),
		grpc.InitialConnWindowSize(1 << 20),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: 5 * time.Minute,
			Time:              30 * time.Second,
			Timeout:           10 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}

// ticket is one Invoke call's reservation.
type ticket struct {
	a     *admission
	conn  string
	n     atomic.Int64 // bytes reserved; -1 once released
	start time.Time
	// read ends the call if its request has not been read within
	// Edge.RequestTimeout: the handler is not running yet, so nothing
	// else could stop a caller that announces a message and stalls.
	read *time.Timer
}

type ticketKey struct{}

// tap is the grpc.InTapHandle. It runs on the transport's goroutine with
// the connection's lock held, so it only counts (and, through auth,
// compares a token; a refusal writes an audit record only when it is the
// first of its source in an interval, and then holds up only the
// refused caller's own connection).
func (a *admission) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if a.auth != nil {
		if err := a.auth(ctx, info); err != nil {
			return nil, err
		}
	}
	switch info.FullMethodName {
	case udfhostv1.InvokeService_Invoke_FullMethodName:
		conn := connOf(ctx)
		est, ok := a.reserveUnread(conn)
		if !ok {
			return nil, toStatus(a.overloadErr(fmt.Sprintf("%d MiB of requests in flight", a.inflight()>>20)))
		}
		ctx, cancel := context.WithCancel(ctx)
		t := &ticket{a: a, conn: conn, start: time.Now(), read: time.AfterFunc(a.edge.RequestTimeout, cancel)}
		t.n.Store(est)
		context.AfterFunc(ctx, func() { t.release(); cancel() })
		return context.WithValue(ctx, ticketKey{}, t), nil
	case udfhostv1.InvokeService_InvokeStream_FullMethodName:
		if n := a.streams.Add(1); n > int64(a.edge.MaxStreams) {
			a.streams.Add(-1)
			return nil, toStatus(a.overloadErr(fmt.Sprintf("%d streams open (limit %d)", n-1, a.edge.MaxStreams)))
		}
		context.AfterFunc(ctx, func() { a.streams.Add(-1) })
	default:
		if unauthenticated(info.FullMethodName) {
			conn := connOf(ctx)
			if !a.openCall(conn) {
				return nil, toStatus(a.overloadErr(fmt.Sprintf("too many health or reflection calls open (at most %d per connection, %d in all)", maxOpenPerConn, maxOpenAnonymous)))
			}
			context.AfterFunc(ctx, func() { a.closeCall(conn) })
		}
	}
	return ctx, nil
}

// openCall counts a call to a method anyone may call on conn, if conn has
// fewer than maxOpenPerConn open and the server fewer than
// maxOpenAnonymous.
func (a *admission) openCall(conn string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.open[conn] >= maxOpenPerConn || a.openAnon >= maxOpenAnonymous {
		return false
	}
	a.open[conn]++
	a.openAnon++
	return true
}

func (a *admission) closeCall(conn string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.openAnon--
	if a.open[conn]--; a.open[conn] <= 0 {
		delete(a.open, conn)
	}
}

// reserve adds n bytes in flight for conn if the budget allows (see
// admission). With nothing in flight anything is admitted, so no request
// is too large to ever run.
func (a *admission) reserve(conn string, n int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reserveLocked(conn, n, a.conns[conn])
}

// reserveUnread reserves conn's estimate of an unread request's size and
// returns it.
func (a *admission) reserveUnread(conn string) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.conns[conn]
	n := int64(firstEstimate)
	if c != nil {
		n = c.est
	}
	return n, a.reserveLocked(conn, n, c)
}

func (a *admission) reserveLocked(conn string, n int64, c *connLoad) bool {
	soft, hard := a.edge.MaxInflightBytes/2, a.edge.MaxInflightBytes
	active := int64(len(a.conns))
	if c == nil {
		c = &connLoad{est: firstEstimate}
		active++
	}
	switch {
	case a.total == 0, a.total+n <= soft:
	case c.held == 0 && a.total+n <= hard:
		// One call of a connection with nothing in flight: however the
		// others share the budget, a new caller is not locked out.
	case a.total+n <= hard-hard/8 && c.held+n <= soft/active:
		// The last eighth is kept for those new callers.
	default:
		return false
	}
	a.total += n
	c.held += n
	a.conns[conn] = c
	return true
}

// add changes conn's bytes in flight by d (negative: released); read, if
// positive, is the size of a request just read, which moves conn's
// estimate.
func (a *admission) add(conn string, d, read int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.conns[conn]
	if c == nil {
		return // cannot happen: every reservation created it
	}
	a.total += d
	c.held += d
	if read > 0 {
		c.est = max(c.est+(read-c.est)/4, minEstimate)
	}
	if c.held <= 0 {
		delete(a.conns, conn)
	}
}

// inflight is the request bytes reserved by invocations in flight.
func (a *admission) inflight() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

// connOf names the connection a call arrived on.
func connOf(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if p.LocalAddr != nil {
		return p.Addr.String() + ">" + p.LocalAddr.String()
	}
	return p.Addr.String()
}

// settle replaces the estimate of the Invoke call of ctx by its request's
// size, now that it has been read.
func (a *admission) settle(ctx context.Context, size int) {
	t, _ := ctx.Value(ticketKey{}).(*ticket)
	if a == nil || t == nil {
		return
	}
	t.read.Stop()
	n := int64(size)
	for {
		old := t.n.Load()
		if old < 0 {
			return // the call is already over
		}
		if t.n.CompareAndSwap(old, n) {
			a.add(t.conn, n-old, n)
			return
		}
	}
}

func (t *ticket) release() {
	t.read.Stop()
	if n := t.n.Swap(-1); n >= 0 {
		t.a.add(t.conn, -n, 0)
		d := time.Since(t.start).Nanoseconds()
		avg := t.a.avgNanos.Load()
		t.a.avgNanos.Store(avg + (d-avg)/8)
	}
}

// hold reserves the size of a stream's batch, which gRPC has read already,
// for the connection of the stream's ctx; ok is false, and nothing
// reserved, when the budget does not allow it.
func (a *admission) hold(ctx context.Context, size int) (release func(), ok bool) {
	if a == nil {
		return func() {}, true
	}
	conn, n := connOf(ctx), int64(size)
	if !a.reserve(conn, n) {
		return nil, false
	}
	return func() { a.add(conn, -n, 0) }, true
}

// retryAfter is the hint given with a refusal: about one call's time.
func (a *admission) retryAfter() time.Duration {
	return min(max(time.Duration(a.avgNanos.Load()), 10*time.Millisecond), time.Second)
}

// errBusy marks calls refused by admission control.
var errBusy = errors.New("server busy")

// overloadErr is a refusal with a retry hint; toStatus makes it
// RESOURCE_EXHAUSTED with a google.rpc.RetryInfo.
func (a *admission) overloadErr(why string) error {
	d := a.retryAfter()
	return &overloadError{err: fmt.Errorf("%w: %s; retry after %s", errBusy, why, d), after: d}
}
