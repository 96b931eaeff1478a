package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"google.golang.org/grpc"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// EchoOption configures StartEcho.
type EchoOption func(*echoService)

// WithResultType sets the type of the empty result column the echo server
// returns for batches without columns (a function of no arguments); the
// default is TYPE_UNSPECIFIED.
func WithResultType(t udfhostv1.SqlType) EchoOption {
	return func(e *echoService) { e.result = t }
}

// StartEcho starts the echo ceiling: a gRPC server on 127.0.0.1:0 serving
// InvokeService with the real server's message size limits, answering every
// request with its first column and doing nothing else. Its throughput is
// what gRPC alone allows on this machine for the same messages. stop (or
// ctx ending) closes it.
func StartEcho(ctx context.Context, opts ...EchoOption) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	svc := &echoService{}
	for _, o := range opts {
		o(svc)
	}
	// The same transport options as internal/server (no interceptors: the
	// real ones only compare a token, which costs nothing measurable).
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(80<<20), grpc.MaxSendMsgSize(80<<20))
	udfhostv1.RegisterInvokeServiceServer(srv, svc)
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			srv.Stop()
		case <-done:
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			srv.Stop()
			<-served
		})
	}
	return ln.Addr().String(), stop, nil
}

type echoService struct {
	udfhostv1.UnimplementedInvokeServiceServer
	result udfhostv1.SqlType
}

// answer builds the response the real server would send, minus the work:
// the same message type and, for a function whose result has the type of
// its first argument, about the same bytes.
func (e *echoService) answer(req *udfhostv1.InvokeRequest) *udfhostv1.InvokeResponse {
	resp := &udfhostv1.InvokeResponse{Seq: req.Seq}
	if b := req.Batch; b != nil {
		resp.Rows = b.Rows
		if len(b.Columns) > 0 {
			resp.Result = b.Columns[0]
		}
	}
	if resp.Result == nil {
		resp.Result = &udfhostv1.Column{Type: e.result}
	}
	return resp
}

func (e *echoService) Invoke(_ context.Context, req *udfhostv1.InvokeRequest) (*udfhostv1.InvokeResponse, error) {
	return e.answer(req), nil
}

func (e *echoService) InvokeStream(stream udfhostv1.InvokeService_InvokeStreamServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(e.answer(req)); err != nil {
			return err
		}
	}
}
