package server

import (
	"context"
	"errors"

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
	case errors.Is(err, artifacts.ErrUploadState), errors.Is(err, errInUse):
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
