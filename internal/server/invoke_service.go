package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/abi"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
	"github.com/udfhost/udfhost/sandbox"
)

type invokeService struct {
	udfhostv1.UnimplementedInvokeServiceServer
	s *Server
	// quarantine counts violations; quarantines themselves live in the
	// artifact store, which persists them and answers for every batch.
	quarantine quarantiner
}

func (is *invokeService) Invoke(ctx context.Context, req *udfhostv1.InvokeRequest) (*udfhostv1.InvokeResponse, error) {
	return is.invoke(ctx, req)
}

// streamWindow bounds the batches of one stream processed at once. A task
// manager that pipelines (sends before the previous answer arrives) gets its
// batches run concurrently; answers still go out in request order.
const streamWindow = 16

// InvokeStream answers each request in order. A failed batch is reported in
// its response and the stream goes on; only a broken stream ends it.
func (is *invokeService) InvokeStream(stream udfhostv1.InvokeService_InvokeStreamServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	type slot struct {
		done chan struct{}
		resp *udfhostv1.InvokeResponse
	}
	order := make(chan *slot, streamWindow)
	sendErr := make(chan error, 1)
	go func() {
		var err error
		for sl := range order {
			<-sl.done
			if err == nil {
				if err = stream.Send(sl.resp); err != nil {
					cancel() // stop the receive loop and running batches
				}
			}
		}
		sendErr <- err
	}()
	var recvErr error
	for {
		req, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				recvErr = err
			}
			break
		}
		sl := &slot{done: make(chan struct{})}
		order <- sl // blocks when streamWindow batches are in flight
		go func() {
			defer close(sl.done)
			resp, err := is.invoke(ctx, req)
			if err != nil {
				st := status.Convert(toStatus(err))
				be := &udfhostv1.BatchError{Code: int32(st.Code()), Message: st.Message()}
				if d, ok := retryAfter(err); ok {
					be.RetryAfterMs = d.Milliseconds()
				}
				resp = &udfhostv1.InvokeResponse{Seq: req.Seq, Error: be}
			}
			sl.resp = resp
		}()
	}
	close(order)
	if err := <-sendErr; err != nil {
		return err
	}
	return recvErr
}

var inputPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (is *invokeService) invoke(ctx context.Context, req *udfhostv1.InvokeRequest) (*udfhostv1.InvokeResponse, error) {
	s := is.s
	f, err := s.fns.Get(envOrDefault(req.Env), req.Function)
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
