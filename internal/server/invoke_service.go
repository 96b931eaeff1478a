package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/udfhost/udfhost/internal/abi"
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
	e := is.s.policy.Edge.WithDefaults()
	return serveStream(stream, streamLimits{first: e.RequestTimeout, idle: e.StreamIdleTimeout}, is.streamBatch)
}

// streamBatch runs one batch of a stream within the server's request-bytes
// budget and turns a failure into the response's BatchError.
func (is *invokeService) streamBatch(ctx context.Context, req *udfhostv1.InvokeRequest) *udfhostv1.InvokeResponse {
	var resp *udfhostv1.InvokeResponse
	var err error
	if release, ok := is.admit.hold(ctx, proto.Size(req)); ok {
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
	s := is.s
	f, err := s.lookupFunction(ctx, req.Env, req.Function)
	if err != nil {
		return nil, err
	}
	if q := s.store.Quarantined(f.Digest); q != nil {
		return nil, &quarantinedError{digest: f.Digest, artifactID: f.ArtifactID, q: q}
	}
	pool, err := s.policy.Pool(f.Env, f.Pool)
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
	if err := checkBatchSize(batchBytes(b), pool); err != nil {
		return nil, err
	}
	if err := abi.ValidateBatch(b, f.Args); err != nil {
		return nil, fmt.Errorf("%w: function %s %s: %v", errInvalid, f.Name, f.Signature(), err)
	}
	resp := &udfhostv1.InvokeResponse{Seq: req.Seq, Rows: b.Rows}
	if b.Rows == 0 {
		resp.Result = &udfhostv1.Column{Type: f.Result}
		return resp, nil
	}
	id := s.identity(f)
	stats := s.stats.get(f, id.SPIFFEID())
	stats.batches.Add(1)
	stats.rows.Add(int64(b.Rows))

	bufp := inputPool.Get().(*[]byte)
	input := abi.AppendInput((*bufp)[:0], b)
	defer func() { *bufp = input; inputPool.Put(bufp) }()

	spec := f.Spec()
	var out []byte
	var w *sandbox.Worker
	// A batch that was in flight when its worker died (killed for another
	// batch's deadline, or crashed) is tried once more on a new worker:
	// functions are pure, so running a batch again is safe. Only the final
	// failure is a violation.
	for attempt := 0; attempt < 2; attempt++ {
		if w, err = s.pods.Get(ctx, id); err != nil {
			stats.fails.Add(1)
			return nil, err
		}
		out, err = w.Call(ctx, &spec, pool.BatchDeadline, input)
		if !errors.Is(err, sandbox.ErrWorkerDied) {
			break
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
			resp.Result, resp.Errors = col, rowErrs
			return resp, nil
		}
		err = fmt.Errorf("%w: %v", sandbox.ErrBadOutput, derr)
	}
	stats.fails.Add(1)
	if sandbox.IsViolation(err) {
		if aerr := is.violation(ctx, f, id, pool, b.Rows, err); aerr != nil {
			return nil, aerr
		}
	}
	return nil, fmt.Errorf("function %s: %w", f.Name, err)
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

// batchBytes is the size of b's column buffers.
func batchBytes(b *udfhostv1.Batch) int {
	n := 0
	for _, c := range b.Columns {
		n += len(c.Validity) + len(c.Offsets) + len(c.Values)
	}
	return n
}
