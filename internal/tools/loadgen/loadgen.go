// Package loadgen drives InvokeService with generated batches and measures
// throughput and per-batch latency. It is the engine behind `udfhost bench`
// and is meant to be called in-process too, by tests and benchmark reports.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/abi/abipb"
	"github.com/udfhost/udfhost/internal/bearer"
	"github.com/udfhost/udfhost/internal/udf"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// Config describes one load run. Zero values take the defaults noted.
type Config struct {
	// Addr is the server's gRPC address. It is ignored when Echo or Dial
	// is set.
	Addr string
	// Token is sent as a bearer token on every call when not empty.
	Token string
	// Dial, when set, opens one client connection per call and is used
	// instead of Addr and Token, so a caller can authenticate the way the
	// rest of its code does. It is called Conns times.
	Dial func() (*grpc.ClientConn, error)
	// Echo runs against an in-process echo server (StartEcho) instead of a
	// real one: the ceiling gRPC alone allows for the same messages.
	Echo bool

	// Function and Env name the function; Env "" means "default".
	Function, Env string
	// Args are the argument types the generated batches have; Result is the
	// result type (the echo server needs it for functions of no arguments).
	Args   []udfhostv1.SqlType
	Result udfhostv1.SqlType

	// Rows is the number of rows to send after warmup (exactly: the last
	// batch is short when Rows is not a multiple of BatchRows); 0 runs for
	// Duration instead.
	Rows int64
	// BatchRows is the number of rows per batch (default 1024).
	BatchRows int
	// Streams is the number of concurrent streams (unary: callers), default 1.
	Streams int
	// Conns is the number of client connections the streams share
	// round-robin; 0 means one per core, at most one per stream (see
	// defaultConns).
	Conns int
	// Rate paces all streams together to this many batches per second
	// (0: as fast as answers come back), to measure latency at a given load.
	Rate float64
	// Window is the number of batches in flight per stream (default 1:
	// send, wait for the answer, send the next).
	Window int
	// Unary uses unary Invoke, Window concurrent calls per stream, instead
	// of InvokeStream.
	Unary bool
	// Duration is how long to measure when Rows is 0 (default 10s); Warmup
	// runs before it and is not counted (default 0).
	Duration, Warmup time.Duration
	// ValueSize is the number of bytes in each VARCHAR and BYTES value
	// (default 16); Nulls is the fraction of NULL rows per column.
	ValueSize int
	Nulls     float64
	// Seed makes the generated batches reproducible.
	Seed uint64
	// Check, when set, is called for every measured successful response; an
	// error counts the batch as failed. It is called from several
	// goroutines at once and must not modify its arguments.
	Check func(req *udfhostv1.Batch, resp *udfhostv1.InvokeResponse) error
}

// Result is what a run measured; it is the JSON `udfhost bench` prints.
// Batches and Rows count successful batches in the measured window only;
// Errors counts every failed measured batch, ResourceExhausted the subset
// the server refused with RESOURCE_EXHAUSTED (overload, not a fault).
type Result struct {
	Mode              string  `json:"mode"`   // "stream" or "unary"
	Target            string  `json:"target"` // "server" or "echo"
	Function          string  `json:"function"`
	Signature         string  `json:"signature"`
	Streams           int     `json:"streams"`
	Conns             int     `json:"conns"`
	Window            int     `json:"window"`
	Rate              float64 `json:"rate,omitempty"` // batches/s asked for; 0: unpaced
	BatchRows         int     `json:"batch_rows"`
	ValueSize         int     `json:"value_size"`
	Nulls             float64 `json:"nulls"`
	RequestBytes      int     `json:"request_bytes"` // encoded size of one full-batch InvokeRequest
	Seconds           float64 `json:"seconds"`
	Batches           int64   `json:"batches"`
	Rows              int64   `json:"rows"`
	RowsPerSec        float64 `json:"rows_per_sec"`
	BatchesPerSec     float64 `json:"batches_per_sec"`
	P50Ms             float64 `json:"p50_ms"`
	P99Ms             float64 `json:"p99_ms"`
	MaxMs             float64 `json:"max_ms"`
	Errors            int64   `json:"errors"`
	FirstError        string  `json:"first_error,omitempty"`
	ResourceExhausted int64   `json:"resource_exhausted"`
}

// maxBatchSet bounds the memory the pre-generated batches take.
const maxBatchSet = 64 << 20

// distinctBatches is how many different batches are generated and rotated:
// enough that a cache or compressor cannot specialise on one, few enough to
// generate in milliseconds.
const distinctBatches = 8

// drainTimeout is how long Run waits for outstanding answers after the
// measured window before it gives up on them and counts them as errors.
const drainTimeout = 10 * time.Second

var errDrainTimeout = errors.New("no answer within 10s after the run ended")

// defaultConns is the number of connections when Config.Conns is 0: one per
// core, at most one per stream. Each connection has one writer and one
// reader goroutine on each side, so its transport work is serial and one
// connection cannot use more than about a core; connections beyond the
// cores only add goroutines to schedule and lose the coalescing a busy
// connection does (its writer sends the frames of several streams in one
// write(2)). Measured against the echo server on 2 cores, 1024-row batches,
// median of 7 runs, Mrows/s for one per stream / one shared / two:
// (BIGINT, BIGINT, BIGINT) with 4 streams 25.0/21.5/23.8 (window 1) and
// 24.6/27.3/27.6 (window 4), with 16 streams 22.7/26.4/27.9 and
// 28.7/37.1/31.2; (VARCHAR) 26.2/21.1/25.6, 33.2/32.9/34.1, 25.5/28.8/29.7,
// 32.2/35.8/38.4. One connection per stream made 1.5 writes and 2 reads per
// batch at 16 streams against 1.2 and 1.2 with two. HTTP/2 flow control was
// not the limit at these sizes: gRPC's BDP estimator grows the windows.
func defaultConns(streams int) int { return min(streams, runtime.GOMAXPROCS(0)) }

func (c *Config) setDefaults() error {
	if c.BatchRows == 0 {
		c.BatchRows = 1024
	}
	if c.Streams == 0 {
		c.Streams = 1
	}
	if c.Window == 0 {
		c.Window = 1
	}
	if c.ValueSize == 0 {
		c.ValueSize = 16
	}
	if c.Rows == 0 && c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Conns == 0 {
		c.Conns = defaultConns(c.Streams)
	}
	c.Conns = min(c.Conns, c.Streams)
	switch {
	case c.BatchRows < 1:
		return fmt.Errorf("batch rows must be at least 1, not %d", c.BatchRows)
	case c.Streams < 1:
		return fmt.Errorf("streams must be at least 1, not %d", c.Streams)
	case c.Window < 1:
		return fmt.Errorf("window must be at least 1, not %d", c.Window)
	case c.Conns < 1:
		return fmt.Errorf("conns must be at least 1, not %d", c.Conns)
	case c.ValueSize < 0:
		return fmt.Errorf("value size must not be negative, not %d", c.ValueSize)
	case !(c.Nulls >= 0 && c.Nulls <= 1):
		return fmt.Errorf("nulls must be a fraction between 0 and 1, not %v", c.Nulls)
	case c.Rows < 0:
		return fmt.Errorf("rows must not be negative, not %d", c.Rows)
	case c.Rows == 0 && c.Duration < 0:
		return fmt.Errorf("duration must be positive, not %v", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("warmup must not be negative, not %v", c.Warmup)
	case c.Function == "":
		return errors.New("no function name")
	case !c.Echo && c.Dial == nil && c.Addr == "":
		return errors.New("no server address")
	}
	for i, t := range append(slices.Clone(c.Args), c.Result) {
		if t < udfhostv1.SqlType_TYPE_INT || t > udfhostv1.SqlType_TYPE_BYTES {
			if i == len(c.Args) {
				return fmt.Errorf("invalid result type %v", t)
			}
			return fmt.Errorf("invalid type %v for argument %d", t, i+1)
		}
	}
	return nil
}

// Run sends batches until Rows rows or Duration have been measured after
// Warmup, waits for the outstanding answers and returns the measurements.
// Failed batches are counted, not fatal; Run's error is for what stops the
// run itself (bad config, no connection). When ctx ends during the run, Run
// stops early and returns what it measured along with ctx.Err() itself.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return Result{}, err
	}
	r := &runner{cfg: cfg, parent: ctx, stopCh: make(chan struct{})}
	r.genBatches()
	res := Result{
		Mode: "stream", Target: "server", Function: cfg.Function,
		Signature: functions.FormatSignature(abipb.FromTypes(cfg.Args), udf.Type(cfg.Result)),
		Streams:   cfg.Streams, Conns: cfg.Conns, Window: cfg.Window, Rate: cfg.Rate, BatchRows: cfg.BatchRows,
		ValueSize: cfg.ValueSize, Nulls: cfg.Nulls,
		RequestBytes: newRequest(r.batches[0], 1<<20).size(),
	}
	if cfg.Unary {
		res.Mode = "unary"
	}

	dial := cfg.Dial
	target := cfg.Addr
	if cfg.Echo {
		res.Target = "echo"
		addr, stop, err := StartEcho(ctx, WithResultType(cfg.Result))
		if err != nil {
			return res, fmt.Errorf("start echo server: %w", err)
		}
		defer stop()
		target, dial = addr, nil
	}
	if dial == nil {
		dial = func() (*grpc.ClientConn, error) { return Dial(target, cfg.Token) }
	}
	conns := make([]*grpc.ClientConn, cfg.Conns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		c, err := dial()
		if err != nil {
			return res, err
		}
		conns[i] = c
		if err := waitReady(ctx, c, 10*time.Second); err != nil {
			return res, err
		}
	}

	// RPCs end when the caller's ctx does, or when answers are overdue
	// after the run.
	rpcCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.rpcCtx = rpcCtx

	start := time.Now()
	r.measureStart = start.Add(cfg.Warmup)
	r.paceStart = start
	r.measureEnd = r.measureStart.Add(cfg.Duration)
	var wg sync.WaitGroup
	var tallies []*tally
	for s := range cfg.Streams {
		conn := conns[s%len(conns)]
		if cfg.Unary {
			for w := range cfg.Window {
				t := &tally{}
				tallies = append(tallies, t)
				wg.Go(func() { r.unary(conn, t, s*cfg.Window+w) })
			}
			continue
		}
		t := &tally{}
		tallies = append(tallies, t)
		if cfg.Window == 1 {
			wg.Go(func() { r.pingPong(conn, t, s) })
		} else {
			wg.Go(func() { r.pipelined(conn, t, s) })
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var deadline <-chan time.Time
	if cfg.Rows == 0 {
		timer := time.NewTimer(time.Until(r.measureEnd))
		defer timer.Stop()
		deadline = timer.C
	}
	select {
	case <-done:
	case <-deadline:
	case <-ctx.Done():
	}
	// Senders notice the end on their next batch; this also wakes any
	// that wait out a retry delay.
	r.stop()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		cancel(errDrainTimeout)
		<-done
	}
	r.summarize(&res, tallies)
	return res, ctx.Err()
}

// Dial opens a plaintext client connection to addr with the real client's
// message size limits, sending token as a bearer token when it is not empty.
func Dial(addr, token string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(80<<20), grpc.MaxCallSendMsgSize(80<<20)),
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer.Token(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return conn, nil
}

// waitReady connects c before the clock starts, so connection set-up is
// neither measured nor mistaken for failed batches, and so an unreachable
// server is one clear error rather than a run full of failures.
func waitReady(parent context.Context, c *grpc.ClientConn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	c.Connect()
	for {
		s := c.GetState()
		if s == connectivity.Ready {
			return nil
		}
		if !c.WaitForStateChange(ctx, s) {
			if err := parent.Err(); err != nil {
				return fmt.Errorf("connect to %s: %w", c.Target(), err)
			}
			return fmt.Errorf("connect to %s: still %s after %v", c.Target(), c.GetState(), timeout)
		}
	}
}

// runner is the state the stream goroutines share.
type runner struct {
	cfg     Config
	batches []*prepared // distinct full batches, rotated
	tail    *prepared   // the short last batch of a Rows run, or nil
	total   int64       // batches in a Rows run

	parent, rpcCtx           context.Context
	measureStart, measureEnd time.Time
	claimed                  atomic.Int64
	paced                    atomic.Int64 // sends scheduled by Rate so far
	paceStart                time.Time
	stopped                  atomic.Bool
	stopOnce                 sync.Once
	stopCh                   chan struct{}
}

// genBatches generates the batches up front, so that during the run the
// client spends its CPU on gRPC and not on making data.
func (r *runner) genBatches() {
	c := &r.cfg
	rng := rand.New(rand.NewPCG(c.Seed, 0x9e3779b97f4a7c15))
	gen := func(rows int) *prepared {
		return prepare(c.Function, c.Env, GenBatch(c.Args, rows, c.ValueSize, c.Nulls, rng))
	}
	first := gen(c.BatchRows)
	n := max(1, min(distinctBatches, maxBatchSet/max(1, len(first.body))))
	r.batches = append(r.batches, first)
	for len(r.batches) < n {
		r.batches = append(r.batches, gen(c.BatchRows))
	}
	if c.Rows > 0 {
		r.total = (c.Rows + int64(c.BatchRows) - 1) / int64(c.BatchRows)
		if short := int(c.Rows % int64(c.BatchRows)); short != 0 {
			r.tail = gen(short)
		}
	}
}

func (r *runner) stop() {
	r.stopOnce.Do(func() { r.stopped.Store(true); close(r.stopCh) })
}

// job is one batch to send; measured is false during warmup.
type job struct {
	p        *prepared
	measured bool
}

// next returns the batch a sender sends next, or false when the run is
// over. rot is the sender's own rotation counter, so senders do not contend
// on a shared one.
func (r *runner) next(rot *int) (job, bool) {
	if r.stopped.Load() {
		return job{}, false
	}
	if r.cfg.Rate > 0 {
		// Each send gets the next slot of an even schedule; a sender that
		// is early sleeps until its slot.
		slot := r.paced.Add(1) - 1
		due := r.paceStart.Add(time.Duration(float64(slot) / r.cfg.Rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-r.stopCh:
				return job{}, false
			}
		}
	}
	now := time.Now()
	*rot++
	b := r.batches[*rot%len(r.batches)]
	if now.Before(r.measureStart) {
		return job{p: b}, true
	}
	if r.cfg.Rows > 0 {
		n := r.claimed.Add(1) - 1
		if n >= r.total {
			r.stop()
			return job{}, false
		}
		if n == r.total-1 && r.tail != nil {
			b = r.tail
		}
		return job{p: b, measured: true}, true
	}
	if !now.Before(r.measureEnd) {
		r.stop()
		return job{}, false
	}
	return job{p: b, measured: true}, true
}

func (r *runner) request(p *prepared, seq uint64) *encodedRequest {
	return newRequest(p, seq)
}

// newResponse returns a response to receive into, decoded whole when the
// Check callback needs it.
func (r *runner) newResponse() *response {
	resp := &response{}
	if r.cfg.Check != nil {
		resp.full = &udfhostv1.InvokeResponse{}
	}
	return resp
}

func (r *runner) openStream(conn *grpc.ClientConn) (grpc.ClientStream, error) {
	return conn.NewStream(r.rpcCtx, &udfhostv1.InvokeService_ServiceDesc.Streams[0], udfhostv1.InvokeService_InvokeStream_FullMethodName, callOpts...)
}

// tally is one goroutine's measurements, merged at the end so that the hot
// path takes no locks.
type tally struct {
	lat               []time.Duration
	batches, rows     int64
	errors, exhausted int64
	firstErr          error
	firstErrAt, last  time.Time
}

// done records the answer to j, sent at sent and received at now.
func (r *runner) done(t *tally, j job, seq uint64, resp *response, sent, now time.Time) {
	if !j.measured {
		return
	}
	if err := r.validate(j, seq, resp); err != nil {
		r.fail(t, j, err, now)
		return
	}
	t.lat = append(t.lat, now.Sub(sent))
	t.batches++
	t.rows += int64(j.p.batch.Rows)
	if now.After(t.last) {
		t.last = now
	}
}

func (r *runner) validate(j job, seq uint64, resp *response) error {
	if e := resp.err; e != nil {
		return status.Error(codes.Code(e.Code), e.Message)
	}
	if resp.seq != seq {
		return fmt.Errorf("response seq %d, want %d", resp.seq, seq)
	}
	if resp.rows != j.p.batch.Rows {
		return fmt.Errorf("response has %d rows, the batch %d", resp.rows, j.p.batch.Rows)
	}
	if r.cfg.Check != nil {
		return r.cfg.Check(j.p.batch, resp.full)
	}
	return nil
}

// fail counts a failed measured batch. Failures caused by the caller
// cancelling the run are not the server's and are not counted.
func (r *runner) fail(t *tally, j job, err error, now time.Time) {
	if !j.measured || r.parent.Err() != nil {
		return
	}
	if r.rpcCtx.Err() != nil {
		err = context.Cause(r.rpcCtx)
	}
	t.errors++
	if status.Code(err) == codes.ResourceExhausted {
		t.exhausted++
	}
	if t.firstErr == nil {
		t.firstErr, t.firstErrAt = err, now
	}
}

// pause waits d or until the run stops.
func (r *runner) pause(d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.stopCh:
	case <-r.rpcCtx.Done():
	}
}

// reopenDelay is the pause before a broken stream is reopened, so a dead
// server, or one that refuses every stream, does not turn the bench into a
// busy loop.
const reopenDelay = 100 * time.Millisecond

// streamErr returns the status that ended a stream whose Send failed (Send
// reports only io.EOF; Recv has the reason).
func streamErr(st grpc.ClientStream, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	if rerr := st.RecvMsg(&response{}); rerr != nil && !errors.Is(rerr, io.EOF) {
		return rerr
	}
	return errors.New("stream closed by the server")
}

// pingPong is one stream with window 1: send a batch, wait for its answer,
// send the next, as the simplest task manager does. No second goroutine, so
// no hand-off per batch.
func (r *runner) pingPong(conn *grpc.ClientConn, t *tally, rot int) {
	var seq uint64
	resp := r.newResponse()
	for !r.stopped.Load() {
		st, err := r.openStream(conn)
		if err != nil {
			r.fail(t, job{measured: !time.Now().Before(r.measureStart)}, err, time.Now())
			r.pause(reopenDelay)
			continue
		}
		broken := false
		for {
			j, ok := r.next(&rot)
			if !ok {
				break
			}
			seq++
			sent := time.Now()
			if err := st.SendMsg(r.request(j.p, seq)); err != nil {
				r.fail(t, j, streamErr(st, err), time.Now())
				broken = true
				break
			}
			resp.clear()
			err := st.RecvMsg(resp)
			now := time.Now()
			if err != nil {
				r.fail(t, j, err, now)
				broken = true
				break
			}
			r.done(t, j, seq, resp, sent, now)
			if d := resp.retryAfter(); d > 0 {
				r.pause(d) // the server asked to back off, as a task manager would
			}
		}
		st.CloseSend()
		for { // until the server's end of the stream (or its error)
			if err := st.RecvMsg(resp); err != nil {
				break
			}
		}
		if broken {
			r.pause(reopenDelay)
		}
	}
}

// inflight is a sent batch awaiting its answer.
type inflight struct {
	seq  uint64
	job  job
	sent time.Time
}

// pipelined is one stream with window > 1: this goroutine keeps Window
// batches outstanding and a receiver goroutine matches the answers to them
// by seq.
func (r *runner) pipelined(conn *grpc.ClientConn, t *tally, rot int) {
	w := r.cfg.Window
	var seq uint64
	for !r.stopped.Load() {
		st, err := r.openStream(conn)
		if err != nil {
			r.fail(t, job{measured: !time.Now().Before(r.measureStart)}, err, time.Now())
			r.pause(reopenDelay)
			continue
		}
		// slots bounds the batches in flight; recs hands their records to
		// the receiver (it never blocks: at most w are outstanding).
		slots := make(chan struct{}, w)
		recs := make(chan inflight, w)
		recvDone := make(chan struct{})
		var pending []inflight // the receiver's; the sender's after recvDone
		var recvErr error
		var backoffUntil atomic.Int64 // unix nanos; set when the server refuses with a retry hint
		go func() {
			defer close(recvDone)
			resp := r.newResponse()
			for {
				resp.clear()
				err := st.RecvMsg(resp)
				now := time.Now()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						recvErr = err
					}
					return
				}
				k := -1
				for {
					for i, p := range pending {
						if p.seq == resp.seq {
							k = i
							break
						}
					}
					if k >= 0 {
						break
					}
					select {
					case p := <-recs:
						pending = append(pending, p)
						continue
					default:
					}
					break
				}
				if k < 0 && len(pending) == 0 {
					r.fail(t, job{measured: !now.Before(r.measureStart)}, fmt.Errorf("response with seq %d while nothing is outstanding", resp.seq), now)
					continue
				}
				if k < 0 {
					// Not a batch we sent: count it against the oldest
					// outstanding one, which it presumably answers, so the
					// window does not shrink for good.
					r.fail(t, pending[0].job, fmt.Errorf("response with seq %d, want one of the %d outstanding from %d", resp.seq, len(pending), pending[0].seq), now)
					k = 0
				} else {
					r.done(t, pending[k].job, pending[k].seq, resp, pending[k].sent, now)
				}
				pending = slices.Delete(pending, k, k+1)
				if d := resp.retryAfter(); d > 0 {
					backoffUntil.Store(now.Add(d).UnixNano())
				}
				<-slots
			}
		}()
	send:
		for {
			select {
			case slots <- struct{}{}:
			case <-recvDone:
				break send
			}
			if d := time.Until(time.Unix(0, backoffUntil.Load())); d > 0 {
				r.pause(d)
			}
			j, ok := r.next(&rot)
			if !ok {
				<-slots
				break
			}
			seq++
			sent := time.Now()
			recs <- inflight{seq: seq, job: j, sent: sent}
			if err := st.SendMsg(r.request(j.p, seq)); err != nil {
				break // the receiver gets the reason from RecvMsg
			}
		}
		st.CloseSend()
		<-recvDone
		// Whatever is still outstanding was lost with the stream.
		for len(recs) > 0 {
			pending = append(pending, <-recs)
		}
		cause := recvErr
		if cause == nil {
			cause = errors.New("stream ended before the answer")
		}
		now := time.Now()
		for _, p := range pending {
			r.fail(t, p.job, cause, now)
		}
		if recvErr != nil {
			r.pause(reopenDelay)
		}
	}
}

// unary is one of Window concurrent unary callers of a stream.
func (r *runner) unary(conn *grpc.ClientConn, t *tally, rot int) {
	var seq uint64
	resp := r.newResponse()
	for {
		j, ok := r.next(&rot)
		if !ok {
			return
		}
		seq++
		sent := time.Now()
		resp.clear()
		err := conn.Invoke(r.rpcCtx, udfhostv1.InvokeService_Invoke_FullMethodName, r.request(j.p, seq), resp, callOpts...)
		now := time.Now()
		if err != nil {
			r.fail(t, j, err, now)
			if d := retryDelay(err); d > 0 {
				r.pause(d) // the server asked to back off, as a task manager would
			}
			continue
		}
		r.done(t, j, seq, resp, sent, now)
	}
}

// retryDelay is the google.rpc.RetryInfo delay of a RESOURCE_EXHAUSTED
// error, capped at a second so a run still ends on time.
func retryDelay(err error) time.Duration {
	st, _ := status.FromError(err)
	if st.Code() != codes.ResourceExhausted {
		return 0
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return min(ri.RetryDelay.AsDuration(), time.Second)
		}
	}
	return 0
}

// summarize merges the tallies into res.
func (r *runner) summarize(res *Result, tallies []*tally) {
	var lat []time.Duration
	end := r.measureStart
	var first time.Time
	var firstErr error
	for _, t := range tallies {
		lat = append(lat, t.lat...)
		res.Batches += t.batches
		res.Rows += t.rows
		res.Errors += t.errors
		res.ResourceExhausted += t.exhausted
		if t.last.After(end) {
			end = t.last
		}
		if t.firstErr != nil && (firstErr == nil || t.firstErrAt.Before(first)) {
			firstErr, first = t.firstErr, t.firstErrAt
		}
	}
	if firstErr != nil {
		res.FirstError = errorText(firstErr)
	}
	// The window ends with the last measured answer; a run that measured
	// nothing reports the time it tried.
	if res.Batches == 0 {
		end = time.Now()
	}
	secs := end.Sub(r.measureStart).Seconds()
	if secs > 0 {
		res.Seconds = round(secs, 3)
		res.RowsPerSec = round(float64(res.Rows)/secs, 1)
		res.BatchesPerSec = round(float64(res.Batches)/secs, 1)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50Ms = ms(percentile(lat, 0.50))
		res.P99Ms = ms(percentile(lat, 0.99))
		res.MaxMs = ms(lat[len(lat)-1])
	}
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// errorText renders a gRPC status as "Code: message", anything else as is.
func errorText(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Code().String() + ": " + st.Message()
	}
	return err.Error()
}
