package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// streamWindow bounds the batches of one stream processed at once. A task
// manager that pipelines (sends before the previous answer arrives) gets its
// batches run concurrently; answers still go out in request order.
const streamWindow = policies.StreamWindow

// streamLimits says how long a stream may keep the server waiting for a
// request (policies.Edge).
type streamLimits struct {
	first time.Duration // from the stream's start to its first request
	idle  time.Duration // from the last answer to the next request
}

// serveStream answers each request of stream with handle, up to
// streamWindow at once, in request order. A stream with nothing in flight
// that does not deliver a whole request within its limit is ended with
// idleCut; gRPC only hands over whole messages, so the server cannot
// tell a caller that is idle from one that announced a message and
// stalled, and must not hold either forever.
func serveStream(stream udfhostv1.InvokeService_InvokeStreamServer, lim streamLimits,
	handle func(context.Context, *udfhostv1.InvokeRequest) *udfhostv1.InvokeResponse) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	// Recv runs on its own goroutine so that the handler can return while
	// it is blocked; returning ends the stream, which unblocks it.
	reqs := make(chan *udfhostv1.InvokeRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	type slot struct {
		done chan struct{}
		resp *udfhostv1.InvokeResponse
	}
	order := make(chan *slot, streamWindow)
	// pending counts batches received and not yet answered; when it drops
	// to 0 the sender notes the time in idleSince and signals drained.
	var pending atomic.Int64
	var idleSince atomic.Int64
	idleSince.Store(time.Now().UnixNano())
	drained := make(chan struct{}, 1)
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
			idleSince.Store(time.Now().UnixNano())
			if pending.Add(-1) == 0 {
				select {
				case drained <- struct{}{}:
				default:
				}
			}
		}
		sendErr <- err
	}()

	limit, first := lim.first, true
	timer := time.NewTimer(limit)
	defer timer.Stop()
	// rearm points the timer at the end of the current idle period; the
	// timer only ever wakes the loop, which checks the real state.
	rearm := func() time.Duration {
		left := time.Until(time.Unix(0, idleSince.Load()).Add(limit))
		timer.Reset(max(left, 0))
		return left
	}
	var err error
loop:
	for {
		select {
		case req := <-reqs:
			limit, first = lim.idle, false
			pending.Add(1)
			sl := &slot{done: make(chan struct{})}
			order <- sl // blocks when streamWindow batches are in flight
			go func() {
				defer close(sl.done)
				sl.resp = handle(ctx, req)
			}()
		case <-drained:
			rearm()
		case <-timer.C:
			if pending.Load() == 0 && rearm() <= 0 {
				err = idleCut(first, time.Since(time.Unix(0, idleSince.Load())), limit)
				break loop
			}
		case err = <-recvErr:
			if errors.Is(err, io.EOF) {
				err = nil
			}
			break loop
		case <-ctx.Done():
			err = status.FromContextError(ctx.Err()).Err()
			break loop
		}
	}
	close(order)
	if serr := <-sendErr; serr != nil {
		return serr
	}
	return err
}

// idleCutReason is the google.rpc.ErrorInfo reason of an idle cut, for
// clients that match on it rather than on the message.
const idleCutReason = "IDLE_STREAM_CUT"

// idleCut is the status a stream is ended with after waiting idle for a
// request (first: its first) past limit. It is UNAVAILABLE, which clients
// retry, and says that nothing was lost and what to do, so that it does
// not read as "server down"; the message starts "idle stream cut:", as the
// proto documents.
func idleCut(first bool, idle, limit time.Duration) error {
	idle = idle.Round(time.Millisecond)
	var msg, waiting string
	if first {
		waiting = "first_request"
		msg = fmt.Sprintf("idle stream cut: no first request for %s after the stream opened (limit %s); nothing was lost; open a new stream and send its first batch when it opens", idle, limit)
	} else {
		waiting = "next_request"
		msg = fmt.Sprintf("idle stream cut: no request for %s (limit %s) with no batch in flight; every earlier batch was answered; open a new stream", idle, limit)
	}
	st := status.New(codes.Unavailable, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason: idleCutReason, Domain: udfhostv1.InvokeService_ServiceDesc.ServiceName,
		Metadata: map[string]string{"waiting_for": waiting, "limit_ms": strconv.FormatInt(limit.Milliseconds(), 10)},
	}); err == nil {
		st = d
	}
	return st.Err()
}
