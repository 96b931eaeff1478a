package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/names"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/sandbox"
)

// errInvalid marks request errors found by the server itself.
var errInvalid = errors.New("invalid request")

// errBadModule marks a worker start the module made fail (INVALID_ARGUMENT),
// errWorkerStart one the host did (UNAVAILABLE); see startError.
var (
	errBadModule   = errors.New("module cannot run in its pool")
	errWorkerStart = errors.New("worker could not be started")
)

// classedError gives err a class for the edge without changing its
// message (and without the class's words doubling it).
type classedError struct {
	class, err error
}

func (e *classedError) Error() string   { return e.err.Error() }
func (e *classedError) Unwrap() []error { return []error{e.class, e.err} }

// hiddenError is a call refused because its caller may not see the
// environment (policies.ErrHidden): it reads, and is answered, exactly as
// as, the error the same call gets for a resource or environment that
// does not exist, so that the answer tells nothing of what exists. The
// reason is only in the audit record of the denial.
type hiddenError struct {
	reason, as error
}

func (e *hiddenError) Error() string { return e.as.Error() }
func (e *hiddenError) Unwrap() error { return e.as }

// errStale marks a call whose earlier step was authorized under what has
// changed since (FAILED_PRECONDITION).
var errStale = errors.New("no longer valid")

// toStatus maps the packages' sentinel errors to gRPC codes at the edge; the
// message keeps the wrapped detail, which names the problem.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var hidden *hiddenError
	if errors.As(err, &hidden) {
		// Never the reason: exactly what a missing resource gets.
		return toStatus(hidden.as)
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, sandbox.ErrOverloaded) || errors.Is(err, errBusy) || errors.Is(err, pods.ErrCapacity) || errors.Is(err, artifacts.ErrBusy) {
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
	case errors.Is(err, functions.ErrUnavailable), errors.Is(err, artifacts.ErrUnavailable):
		// The shared store failed (unreachable, or slow: first, so that
		// a timeout inside it is not the caller's DEADLINE_EXCEEDED);
		// the message names the store. Nothing was changed: retry.
		code = codes.Unavailable
	case errors.Is(err, errBadModule):
		// Before the deadline case: a start function that overran its
		// deadline is the module's fault, not a slow call.
		code = codes.InvalidArgument
	case errors.Is(err, policies.ErrUnauthenticated):
		code = codes.Unauthenticated
	case errors.Is(err, policies.ErrPermission):
		// As Authorize wrote it: it names the principal, the network, the
		// environment and the role the call would need.
		code = codes.PermissionDenied
	case errors.Is(err, policies.ErrHidden):
		// Only a hiddenError should carry it, answered above; a bare one
		// is answered as a missing environment would be, without detail.
		code = codes.NotFound
		err = errors.New("not found")
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
		errors.Is(err, errInvalid), errors.Is(err, names.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, artifacts.ErrUploadState), errors.Is(err, errInUse), errors.Is(err, errQuarantined), errors.Is(err, errStale):
		code = codes.FailedPrecondition
	case errors.Is(err, sandbox.ErrTrap), errors.Is(err, sandbox.ErrGuest), errors.Is(err, sandbox.ErrBadOutput),
		errors.Is(err, functions.ErrChanged), errors.Is(err, artifacts.ErrConflict):
		// A lost race with another host (ErrChanged, ErrConflict) is
		// ABORTED too: look the function or upload up again and retry.
		code = codes.Aborted
	case errors.Is(err, sandbox.ErrWorkerDied), errors.Is(err, pods.ErrClosed), errors.Is(err, errWorkerStart),
		errors.Is(err, audit.ErrBroken), errors.Is(err, audit.ErrClosed):
		code = codes.Unavailable
	}
	return status.Error(code, trimCodeWords(code, err.Error()))
}

// redundant are the leading sentinel texts that only repeat what a code
// already says: "invalid argument: invalid argument: …" is what a client
// printing the code and the message would otherwise show.
var redundant = map[codes.Code][]string{
	codes.InvalidArgument: {"invalid argument: ", "invalid request: "},
	codes.NotFound:        {"not found: "},
}

// trimCodeWords strips from msg a leading sentinel text that repeats code.
func trimCodeWords(code codes.Code, msg string) string {
	for _, p := range redundant[code] {
		if rest, ok := strings.CutPrefix(msg, p); ok && rest != "" {
			return rest
		}
	}
	return msg
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
	var ce *pods.CapError
	if errors.As(err, &ce) {
		return ce.RetryAfter(), true
	}
	return 0, false
}
