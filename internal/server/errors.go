package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/sandbox"
)

// errInvalid marks request errors found by the server itself.
var errInvalid = errors.New("invalid request")

// toStatus maps the packages' sentinel errors to gRPC codes at the edge; the
// message keeps the wrapped detail, which names the problem.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, sandbox.ErrOverloaded) || errors.Is(err, errBusy) || errors.Is(err, artifacts.ErrBusy) {
		// Tell the caller when to come back (google.rpc.RetryInfo), so a
		// task manager backs off instead of hammering a full queue.
		st := status.New(codes.ResourceExhausted, err.Error())
		if d, ok := retryAfter(err); ok {
			if withInfo, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)}); derr == nil {
				st = withInfo
			}
		}
		return st.Err()
	}
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, sandbox.ErrTimeout):
		code = codes.DeadlineExceeded
	case errors.Is(err, artifacts.ErrNotFound), errors.Is(err, functions.ErrNotFound), errors.Is(err, policies.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, functions.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, artifacts.ErrInvalidArgument), errors.Is(err, artifacts.ErrInvalidModule),
		errors.Is(err, artifacts.ErrDisallowedImport), errors.Is(err, artifacts.ErrTooLarge),
		errors.Is(err, functions.ErrSignature), errors.Is(err, functions.ErrName),
		errors.Is(err, errInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, artifacts.ErrUploadState), errors.Is(err, errInUse), errors.Is(err, errQuarantined):
		code = codes.FailedPrecondition
	case errors.Is(err, sandbox.ErrTrap), errors.Is(err, sandbox.ErrGuest), errors.Is(err, sandbox.ErrBadOutput):
		code = codes.Aborted
	case errors.Is(err, sandbox.ErrWorkerDied), errors.Is(err, pods.ErrClosed),
		errors.Is(err, audit.ErrBroken), errors.Is(err, audit.ErrClosed):
		code = codes.Unavailable
	}
	return status.Error(code, err.Error())
}

var errInUse = errors.New("in use")

// overloadError carries the worker's retry estimate to the edge.
type overloadError struct {
	err   error
	after time.Duration
}

func (e *overloadError) Error() string { return e.err.Error() }
func (e *overloadError) Unwrap() error { return e.err }

func retryAfter(err error) (time.Duration, bool) {
	var oe *overloadError
	if errors.As(err, &oe) {
		return oe.after, true
	}
	return 0, false
}
