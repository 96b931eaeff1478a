package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/abi/abipb"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
	"github.com/udfhost/udfhost/sandbox"
)

type invokeService struct {
	udfhostv1.UnimplementedInvokeServiceServer
	s *Server
	// quarantine counts violations; quarantines themselves live in the
	// artifact store, which persists them and answers for every batch.
	quarantine quarantiner
	// admit is the server's admission control; nil admits everything.
	admit *admission
}

// Invoke runs one batch. Its request was read before this runs; the
// admission tap (admission.go) decided whether it would be.
func (is *invokeService) Invoke(ctx context.Context, req *udfhostv1.InvokeRequest) (*udfhostv1.InvokeResponse, error) {
	is.admit.settle(ctx, proto.Size(req))
	return is.invoke(ctx, req)
}

// InvokeStream answers each request in order (serveStream). A failed batch
// is reported in its response and the stream goes on; only a broken or
// stalled stream ends it.
func (is *invokeService) InvokeStream(stream udfhostv1.InvokeService_InvokeStreamServer) error {
	e := is.s.policyOf(stream.Context()).Edge.WithDefaults()
	return serveStream(stream, streamLimits{first: e.RequestTimeout, idle: e.StreamIdleTimeout}, is.streamBatch)
}

// streamBatch runs one batch of a stream within the server's request-bytes
// budget and turns a failure into the response's BatchError.
func (is *invokeService) streamBatch(ctx context.Context, req *udfhostv1.InvokeRequest) *udfhostv1.InvokeResponse {
	var resp *udfhostv1.InvokeResponse
	// Each batch runs under the policy current when it starts
	// (streamBatchContext).
	ctx, err := is.s.streamBatchContext(ctx)
	if err != nil {
		is.s.denied(ctx, policies.Invoke, functionTarget(req.Env, req.Function), err, false)
	} else if release, ok := is.admit.hold(ctx, proto.Size(req)); ok {
		resp, err = is.invoke(ctx, req)
		release()
	} else {
		err = is.admit.overloadErr(fmt.Sprintf("%d MiB of requests in flight", is.admit.inflight()>>20))
	}
	if err == nil {
		return resp
	}
	st := status.Convert(toStatus(err))
	be := &udfhostv1.BatchError{Code: int32(st.Code()), Message: st.Message()}
	if d, ok := retryAfter(err); ok {
		be.RetryAfterMs = d.Milliseconds()
	}
	return &udfhostv1.InvokeResponse{Seq: req.Seq, Error: be}
}

var inputPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (is *invokeService) invoke(ctx context.Context, req *udfhostv1.InvokeRequest) (*udfhostv1.InvokeResponse, error) {
	read := time.Now()
	s := is.s
	f, err := s.lookupFunction(ctx, req.Env, req.Function)
	if err != nil {
		return nil, err
	}
	if q := s.store.Quarantined(f.Digest); q != nil {
		return nil, &quarantinedError{digest: f.Digest, artifactID: f.ArtifactID, q: q}
	}
	pool, err := s.policyOf(ctx).Pool(f.Env, f.Pool)
	if err != nil {
		return nil, err
	}
	b := req.Batch
	if b == nil {
		b = &udfhostv1.Batch{}
	}
	if int(b.Rows) > pool.MaxBatchRows {
		return nil, fmt.Errorf("%w: batch of %d rows exceeds the pool's limit of %d", errInvalid, b.Rows, pool.MaxBatchRows)
	}
	ab := abipb.FromBatch(b)
	if err := abi.ValidateBatch(ab, f.Args); err != nil {
		return nil, fmt.Errorf("%w: function %s %s: %v", errInvalid, f.Name, f.Signature(), err)
	}
	// The limit counts what the rows need, as laid out for the guest: an
	// Arrow buffer's padding or a slice's unused parent does not count (the
	// gRPC message limit already bounds what the host holds of them).
	if err := checkBatchSize(abi.InputSize(ab), pool); err != nil {
		return nil, err
	}
	resp := &udfhostv1.InvokeResponse{Seq: req.Seq, Rows: b.Rows}
	if b.Rows == 0 {
		resp.Result = abipb.ToColumn(abi.EmptyResult(f.Result))
		return resp, nil
	}
	id := s.identity(f)
	stats := s.stats.get(f, id.SPIFFEID())
	stats.batches.Add(1)
	stats.rows.Add(int64(b.Rows))
	if err := s.invocationsAudited(ctx); err != nil {
		stats.refused.Add(1)
		return nil, err
	}

	bufp := inputPool.Get().(*[]byte)
	input := abi.AppendInput((*bufp)[:0], ab)
	defer func() { *bufp = input; inputPool.Put(bufp) }()

	spec := specOf(f)
	dl := batchDeadline(req, pool)
	// A batch whose caller stops waiting still runs to its deadline at
	// most; if it fails as a violation then, it is charged to it here.
	late := func(err error) {
		if dl.charges(err) {
			is.violation(context.WithoutCancel(ctx), f, id, pool, b.Rows, err)
		}
	}
	var out []byte
	var w *sandbox.Worker
	// A batch that was in flight when its worker died (killed for another
	// batch's deadline, or crashed) is tried once more on a new worker:
	// functions are pure, so running a batch again is safe. The retry is
	// audited; only the final failure is a violation.
	for attempt := 0; attempt < 2; attempt++ {
		if w, err = s.pods.Get(ctx, id); err != nil {
			stats.fails.Add(1)
			return nil, err
		}
		out, err = is.call(ctx, w, &spec, dl, read, input, late)
		if !errors.Is(err, sandbox.ErrWorkerDied) || attempt > 0 {
			break
		}
		if aerr := is.retried(ctx, f, id, b.Rows, err); aerr != nil {
			stats.fails.Add(1)
			return nil, aerr
		}
	}
	if errors.Is(err, sandbox.ErrOverloaded) {
		stats.refused.Add(1)
		return nil, &overloadError{err: err, after: w.RetryAfter()}
	}
	if err == nil {
		err = checkResultSize(len(out), pool)
	}
	if err == nil {
		col, rowErrs, derr := abi.DecodeOutput(out, int(b.Rows), f.Result)
		if derr == nil {
			stats.rowErrors.Add(int64(len(rowErrs)))
			resp.Result, resp.Errors = abipb.ToColumn(col), abipb.ToRowErrors(rowErrs)
			return resp, nil
		}
		err = fmt.Errorf("%w: %v", sandbox.ErrBadOutput, derr)
	}
	stats.fails.Add(1)
	// Overrunning a deadline shorter than the pool's, which the caller
	// chose, is not the guest's fault: the batch was stopped, nothing is
	// charged to the artifact.
	if sandbox.IsViolation(err) && dl.charges(err) {
		if aerr := is.violation(ctx, f, id, pool, b.Rows, err); aerr != nil {
			return nil, aerr
		}
	}
	return nil, fmt.Errorf("function %s: %w", f.Name, err)
}

// deadline is how long one batch may run.
type deadline struct {
	run time.Duration
	// own: the request's deadline_ms, shorter than the pool's, counted
	// from when the request was read.
	own bool
	// inWorker: the worker stops the batch at run (wasm interruption);
	// otherwise the pool's deadline is the worker's.
	inWorker bool
	pool     time.Duration
}

// batchDeadline is req's deadline: the pool's batch deadline, or the
// request's own deadline_ms when that is shorter (0 means the pool's).
func batchDeadline(req *udfhostv1.InvokeRequest, pool *policies.Pool) deadline {
	dl := deadline{run: pool.BatchDeadline, pool: pool.BatchDeadline, inWorker: true}
	if own := time.Duration(req.DeadlineMs) * time.Millisecond; own > 0 && own < pool.BatchDeadline {
		dl.run, dl.own = own, true
		// With process interruption a deadline stops a batch by killing
		// its worker, which all batches of the pod share; a deadline the
		// caller chose must not let it restart the pod at will. The
		// caller is answered at its deadline and the batch is stopped by
		// the pool's at the latest (and charged only for overrunning it).
		dl.inWorker = pool.Interrupt == policies.InterruptWasm
	}
	return dl
}

// charges reports whether err counts against the guest: overrunning a
// deadline shorter than the pool's, which the caller chose, does not.
func (dl deadline) charges(err error) bool {
	return !(dl.own && dl.inWorker && errors.Is(err, sandbox.ErrTimeout))
}

// call runs one attempt of a batch on w within dl, counted from read.
func (is *invokeService) call(ctx context.Context, w *sandbox.Worker, spec *sandbox.FuncSpec, dl deadline, read time.Time, input []byte, late func(error)) ([]byte, error) {
	if !dl.own {
		return w.CallReporting(ctx, spec, dl.run, input, late)
	}
	left := dl.run - time.Since(read)
	if left <= 0 {
		return nil, fmt.Errorf("%w: the batch's own deadline of %s passed before it could run", context.DeadlineExceeded, dl.run)
	}
	if dl.inWorker {
		return w.CallReporting(ctx, spec, left, input, late)
	}
	cctx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	out, err := w.CallReporting(cctx, spec, dl.pool, input, late)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("%w: batch exceeded its own deadline of %s (deadline_ms)", context.DeadlineExceeded, dl.run)
	}
	return out, err
}

// retried audits a batch that is run again on a new worker because its
// worker died under it, with why it died.
func (is *invokeService) retried(ctx context.Context, f *functions.Function, id pods.Identity, rows uint32, err error) error {
	details := map[string]string{"function": f.Name, "digest": f.Digest, "rows": strconv.FormatUint(uint64(rows), 10), "class": violationClass(err)}
	var ce *sandbox.CallError
	if errors.As(err, &ce) && ce.Violation != nil {
		details["layer"] = ce.Violation.Layer
		if ce.Violation.Limit != "" {
			details["limit"] = ce.Violation.Limit
		}
	}
	is.s.log.Warn("batch retried on a new worker", "pod", id.SPIFFEID(), "function", f.Name, "err", err)
	return is.s.audit.Record(ctx, audit.Event{
		Type: audit.TypeInvocationRetried, Actor: "udfhost", Pod: id.SPIFFEID(),
		Resource: "function/" + f.Env + "/" + f.Name, Decision: audit.Error, Reason: err.Error(), Details: details,
	})
}

func violationClass(err error) string {
	switch {
	case errors.Is(err, sandbox.ErrTimeout):
		return "timeout"
	case errors.Is(err, sandbox.ErrTrap):
		return "trap"
	case errors.Is(err, sandbox.ErrBadOutput):
		return "bad_output"
	case errors.Is(err, sandbox.ErrGuest):
		return "guest_error"
	case errors.Is(err, sandbox.ErrWorkerDied):
		return "worker_died"
	}
	return "other"
}

// checkBatchSize refuses a batch of n bytes over the pool's limit.
func checkBatchSize(n int, pool *policies.Pool) error {
	if pool.MaxBatchBytes > 0 && n > pool.MaxBatchBytes {
		return fmt.Errorf("%w: batch of %d bytes exceeds the pool's limit of %d bytes", errInvalid, n, pool.MaxBatchBytes)
	}
	return nil
}

// checkResultSize fails a result of n bytes over the pool's batch limit:
// the worker checks it before copying it out of guest memory, and the host
// again, since a worker is not trusted. Such a response could not be sent
// and would hold that much memory per caller; it is the guest's fault,
// like any other bad output.
func checkResultSize(n int, pool *policies.Pool) error {
	if pool.MaxBatchBytes > 0 && n > pool.MaxBatchBytes {
		return fmt.Errorf("%w: result of %d bytes exceeds the pool's batch limit of %d bytes", sandbox.ErrBadOutput, n, pool.MaxBatchBytes)
	}
	return nil
}
