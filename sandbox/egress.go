package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// EgressRequest is an HTTP request a guest asked for during a call,
// through the udfhost_http import module (docs/ABI.md). It is the
// guest's word, checked only for its shape (wire.DecodeEgressRequest:
// bounded fields, no control characters, an upper-case method, header
// names that are tokens): what it may reach is the handler's to decide.
type EgressRequest struct {
	// Conn names the connection. A guest may name its function's
	// connections by position, "#0" for the first; when the call's
	// binding was given (WithEgress's conns), the sandbox resolves that
	// to the binding's name, so the handler sees names only.
	Conn   string
	Method string
	Path   string // as the guest sent it, e.g. "/key?q=1"
	// Addr is an address the guest chose within the connection's
	// destination (for a CIDR destination), or "".
	Addr string
	// Header is the guest's, as it sent it: Host, a connection's secret
	// header or hop-by-hop headers among them are for the handler to
	// refuse or override.
	Header http.Header
	Body   []byte
}

// EgressResponse is what the handler answers a guest. Headers that the
// protocol cannot carry (more than wire.MaxEgressHeaders, names that are
// not tokens, values with control characters or over 8 KiB) are dropped.
type EgressResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// EgressHandler performs or refuses one egress request of a call. Its ctx
// carries the values of the ctx the call was made with and ends when the
// call does. An error goes back to the guest as its class (ErrEgressDenied,
// ErrOverloaded, otherwise ErrEgressFailed) and its message, which the
// guest sees: it must hold no secret.
type EgressHandler func(ctx context.Context, req EgressRequest) (EgressResponse, error)

// Classes of an EgressHandler's error, as the guest learns them.
var (
	// ErrEgressDenied: the request is not allowed (no such connection,
	// a destination, port or method its grant does not name).
	ErrEgressDenied = errors.New("egress denied")
	// ErrEgressFailed: allowed, but it did not complete.
	ErrEgressFailed = errors.New("egress failed")
)

// errNoConnections is what a guest hears for every request of a call
// made without a handler.
const errNoConnections = "this function has no connections"

type egressKey struct{}

// egressBinding is what WithEgress attaches to a call's context.
type egressBinding struct {
	h     EgressHandler
	conns []string
}

// WithEgress returns ctx with h as the egress handler of the calls made
// with it (Worker.Call, CallReporting); conns are the function's
// connections in binding order, to which a guest's "#i" resolves. A call
// without a handler has no network: each of its requests is refused
// with "this function has no connections".
func WithEgress(ctx context.Context, h EgressHandler, conns ...string) context.Context {
	return context.WithValue(ctx, egressKey{}, &egressBinding{h: h, conns: conns})
}

// callEgress is the egress state of a pending call with a handler.
type callEgress struct {
	*egressBinding
	ctx    context.Context
	cancel context.CancelFunc
}

// newCallEgress returns the egress state of a call made with ctx, or nil for a call without a handler (the common case, which
// costs a context lookup and nothing else).
func newCallEgress(ctx context.Context) *callEgress {
	b, _ := ctx.Value(egressKey{}).(*egressBinding)
	if b == nil || b.h == nil {
		return nil
	}
	// Not the caller's cancellation: a call whose caller stopped waiting
	// still runs to its end, and its requests with it. Nor a deadline of
	// its own: the call ends at its deadline (the worker's, or the
	// watchdog's), and that cancels this context; a handler that gave up
	// earlier would turn the call's timeout into a failed request.
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &callEgress{egressBinding: b, ctx: hctx, cancel: cancel}
}

// egressConfig are a worker's egress limits.
type egressConfig struct {
	slots    chan struct{} // one token per request being handled
	maxBody  int           // of a request body
	maxFrame uint32        // of a KindEgress frame: the fields at their bounds and maxBody
}

// defaultMaxEgressBody is Config.MaxEgressBody's default.
const defaultMaxEgressBody = 1 << 20

// serveEgress answers a KindEgress frame from the worker. It never
// blocks on a handler: a valid request for a call with a handler runs on
// its own goroutine, within the worker's cap; everything else is refused
// at once. Nothing in the frame is trusted: a malformed record, a call
// that is not pending, a request past the cap each get an error reply,
// and the worker serves on.
func (w *Worker) serveEgress(fr wire.Frame) {
	callID, rec, err := wire.ParseEgress(fr.Payload)
	var req wire.EgressRequest
	if err == nil {
		req, err = wire.DecodeEgressRequest(rec, w.egress.maxBody)
	}
	if err != nil {
		w.egressError(fr.ID, wire.StatusEgressBadRequest, "refused: "+err.Error())
		return
	}
	w.mu.Lock()
	pc := w.pending[callID]
	w.mu.Unlock()
	switch {
	case pc == nil:
		w.egressError(fr.ID, wire.StatusEgressDenied, fmt.Sprintf("refused: egress request for call %d, which is not running", callID))
		return
	case pc.egress == nil:
		w.egressError(fr.ID, wire.StatusEgressDenied, errNoConnections)
		return
	}
	conn, err := pc.egress.resolve(req.Conn)
	if err != nil {
		w.egressError(fr.ID, wire.StatusEgressDenied, err.Error())
		return
	}
	select {
	case w.egress.slots <- struct{}{}:
	default:
		w.egressError(fr.ID, wire.StatusEgressOverloaded, fmt.Sprintf("egress overloaded: the worker for %s has %d requests in flight; retry later", w.identity, cap(w.egress.slots)))
		return
	}
	r := EgressRequest{Conn: conn, Method: req.Method, Path: req.Path, Addr: req.Addr, Body: req.Body}
	if len(req.Header) > 0 {
		r.Header = make(http.Header, len(req.Header))
		for _, kv := range req.Header {
			r.Header.Add(kv[0], kv[1])
		}
	}
	go w.runEgress(fr.ID, pc.egress, r)
}

// runEgress runs the handler for egress request id and sends its answer.
func (w *Worker) runEgress(id uint64, ce *callEgress, req EgressRequest) {
	defer func() { <-w.egress.slots }()
	resp, err := ce.h(ce.ctx, req)
	if err == nil && len(resp.Body) > wire.MaxEgressBody {
		err = fmt.Errorf("%w: response of %d bytes exceeds the protocol's limit of %d", ErrEgressFailed, len(resp.Body), wire.MaxEgressBody)
	}
	if err == nil && (resp.Status < 100 || resp.Status > 999) {
		err = fmt.Errorf("%w: the handler answered status %d", ErrEgressFailed, resp.Status)
	}
	if err != nil {
		status := wire.StatusEgressFailed
		switch {
		case errors.Is(err, ErrEgressDenied):
			status = wire.StatusEgressDenied
		case errors.Is(err, ErrOverloaded):
			status = wire.StatusEgressOverloaded
		}
		w.egressError(id, status, err.Error())
		return
	}
	out := wire.EgressResponse{Status: resp.Status, Header: wireHeader(resp.Header), Body: resp.Body}
	// An error means the worker is gone; its death is reported elsewhere.
	w.w.Send(wire.KindEgressReply, wire.StatusOK, id, wire.EncodeEgressResponse(&out)...)
}

func (w *Worker) egressError(id uint64, status uint16, msg string) {
	if len(msg) > wire.MaxEgressError {
		msg = msg[:wire.MaxEgressError]
	}
	w.w.Send(wire.KindEgressReply, status, id, []byte(msg))
}

// resolve maps a guest's "#i" to the binding's i-th connection.
func (ce *callEgress) resolve(conn string) (string, error) {
	n, ok := strings.CutPrefix(conn, "#")
	if !ok || ce.conns == nil {
		return conn, nil
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 || i >= len(ce.conns) {
		return "", fmt.Errorf("%w: connection %s: the function has %d connection(s)", ErrEgressDenied, conn, len(ce.conns))
	}
	return ce.conns[i], nil
}

// wireHeader is h as the protocol carries it: sorted, and without what
// it cannot carry.
func wireHeader(h http.Header) [][2]string {
	var out [][2]string
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			if len(out) == wire.MaxEgressHeaders {
				return out
			}
			if wire.CarriableHeader(k, v) {
				out = append(out, [2]string{k, v})
			}
		}
	}
	return out
}
