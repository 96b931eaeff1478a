package worker

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// httpModule is the import module through which a connector's guest asks
// the host for HTTP exchanges (docs/ABI.md, "The udfhost_http import
// module"). The worker has no network: each request becomes a KindEgress
// frame to the host, whose broker decides, performs it and answers.
const httpModule = "udfhost_http"

// Codes the udfhost_http functions return to the guest; last_error says
// more.
const (
	codeBadRequest = -1 // the request record is malformed or over a limit
	codeMemory     = -2 // a pointer and length outside the guest's memory
	codeDenied     = -3 // the host refused: no such connection, policy
	codeFailed     = -4 // allowed, but it did not complete
	codeOverloaded = -5 // too many requests in flight; retry later
	codeNoResponse = -6 // no response to read (no request yet in this call)
)

// imports reports whether the compiled module imports from module.
func imports(cm wazero.CompiledModule, module string) bool {
	for _, f := range cm.ImportedFunctions() {
		if m, _, _ := f.Import(); m == module {
			return true
		}
	}
	return false
}

// instantiateHTTP registers udfhost_http in rt. Its functions act for the
// call in their context (withEgress); outside one they refuse.
func instantiateHTTP(ctx context.Context, rt wazero.Runtime) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	b := rt.NewHostModuleBuilder(httpModule)
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostRequest), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i64}).
		WithParameterNames("req_ptr", "req_len", "resp_ptr", "resp_cap").Export("request")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostResponseRead), []api.ValueType{i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("offset", "dst_ptr", "dst_cap").Export("response_read")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostResponseHeaders), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("dst_ptr", "dst_cap").Export("response_headers")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostLastError), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("dst_ptr", "dst_cap").Export("last_error")
	_, err := b.Instantiate(ctx)
	return err
}

// egressHub sends a worker's egress requests and hands the host's replies
// to the instances waiting for them, by egress id. A reply for an id no
// instance waits for is dropped: its instance gave up at its call's
// deadline, and the host's handler may still answer after that.
type egressHub struct {
	w       *wire.Writer
	maxBody int // the host's limit on a request body
	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan egressReply
}

// egressReply is a KindEgressReply frame; buf owns its payload.
type egressReply struct {
	status  uint16
	payload []byte
}

func newEgressHub(w *wire.Writer, maxBody int) *egressHub {
	return &egressHub{w: w, maxBody: maxBody, waiting: map[uint64]chan egressReply{}}
}

// do sends the request record rec for call callID and waits for its
// reply or ctx's end (the call's deadline).
func (h *egressHub) do(ctx context.Context, callID uint64, rec []byte) (egressReply, error) {
	ch := make(chan egressReply, 1)
	h.mu.Lock()
	h.next++
	id := h.next
	h.waiting[id] = ch
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.waiting, id)
		h.mu.Unlock()
	}()
	var call [8]byte
	binary.LittleEndian.PutUint64(call[:], callID)
	if err := h.w.Send(wire.KindEgress, wire.StatusOK, id, call[:], rec); err != nil {
		return egressReply{}, fmt.Errorf("send egress request to the host: %w", err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return egressReply{}, ctx.Err()
	}
}

// deliver hands a reply to its waiting instance and reports whether one
// was waiting (the payload is then the waiter's).
func (h *egressHub) deliver(fr wire.Frame) bool {
	h.mu.Lock()
	ch, ok := h.waiting[fr.ID]
	delete(h.waiting, fr.ID)
	h.mu.Unlock()
	if ok {
		ch <- egressReply{status: fr.Status, payload: fr.Payload} // buffered: never blocks
	}
	return ok
}

// egressCall is the udfhost_http state of one call (one instance runs one
// call at a time): the last response, readable until the next request or
// the call's end, and the last error's text.
type egressCall struct {
	hub     *egressHub
	callID  uint64
	resp    wire.EgressResponse
	rec     []byte // the response record, which resp aliases
	lastErr string
}

type egressKey struct{}

// withEgress has the udfhost_http functions called under ctx act for
// call callID.
func withEgress(ctx context.Context, hub *egressHub, callID uint64) context.Context {
	return context.WithValue(ctx, egressKey{}, &egressCall{hub: hub, callID: callID})
}

func egressFrom(ctx context.Context) *egressCall {
	c, _ := ctx.Value(egressKey{}).(*egressCall)
	return c
}

// fail records msg for last_error and returns code.
func (c *egressCall) fail(code int32, msg string) int32 {
	c.lastErr = msg
	return code
}

// hostRequest is request(req_ptr, req_len, resp_ptr, resp_cap) -> i64.
func hostRequest(ctx context.Context, mod api.Module, stack []uint64) {
	c := egressFrom(ctx)
	reqPtr, reqLen, respPtr, respCap := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	stack[0] = uint64(int64(c.request(ctx, mod.Memory(), reqPtr, reqLen, respPtr, respCap)))
}

func (c *egressCall) request(ctx context.Context, mem api.Memory, reqPtr, reqLen, respPtr, respCap uint32) int64 {
	if c == nil {
		return codeDenied // outside a call (the guest's start function)
	}
	c.resp, c.rec = wire.EgressResponse{}, nil
	if mem == nil {
		return int64(c.fail(codeMemory, "udfhost_http.request: the module has no memory"))
	}
	if limit := wire.MaxEgressFrame - 8 - wire.MaxEgressBody + c.hub.maxBody; reqLen > uint32(limit) {
		return int64(c.fail(codeBadRequest, fmt.Sprintf("udfhost_http.request: request of %d bytes exceeds the limit of %d", reqLen, limit)))
	}
	rec, ok := mem.Read(reqPtr, reqLen)
	if !ok {
		return int64(c.fail(codeMemory, fmt.Sprintf("udfhost_http.request: request at %#x+%d is outside guest memory", reqPtr, reqLen)))
	}
	if _, ok := mem.Read(respPtr, respCap); !ok {
		return int64(c.fail(codeMemory, fmt.Sprintf("udfhost_http.request: response buffer at %#x+%d is outside guest memory", respPtr, respCap)))
	}
	// Checked here for a clear code without a round trip; the host checks
	// again, under its own limits.
	if _, err := wire.DecodeEgressRequest(rec, c.hub.maxBody); err != nil {
		return int64(c.fail(codeBadRequest, "udfhost_http.request: "+err.Error()))
	}
	r, err := c.hub.do(ctx, c.callID, rec)
	if err != nil {
		// The call's deadline passed (or the host is gone): the call
		// ends here, the guest does not resume.
		panic(err)
	}
	if r.status != wire.StatusOK {
		msg := string(r.payload)
		switch r.status {
		case wire.StatusEgressDenied:
			return int64(c.fail(codeDenied, msg))
		case wire.StatusEgressOverloaded:
			return int64(c.fail(codeOverloaded, msg))
		case wire.StatusEgressBadRequest:
			return int64(c.fail(codeBadRequest, msg))
		}
		return int64(c.fail(codeFailed, msg))
	}
	resp, err := wire.DecodeEgressResponse(r.payload)
	if err != nil {
		return int64(c.fail(codeFailed, "udfhost_http.request: "+err.Error()))
	}
	c.resp, c.rec = resp, r.payload
	mem.Write(respPtr, resp.Body[:min(len(resp.Body), int(respCap))])
	return int64(resp.Status)<<32 | int64(len(resp.Body))
}

// hostResponseRead is response_read(offset, dst_ptr, dst_cap) -> i32.
func hostResponseRead(ctx context.Context, mod api.Module, stack []uint64) {
	c := egressFrom(ctx)
	offset, dst, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	stack[0] = i32result(c.responseRead(mod.Memory(), offset, dst, n))
}

func (c *egressCall) responseRead(mem api.Memory, offset, dst, n uint32) int32 {
	if c == nil || c.rec == nil {
		return codeNoResponse
	}
	body := c.resp.Body
	if offset >= uint32(len(body)) {
		return 0
	}
	part := body[offset:][:min(uint32(len(body))-offset, n)]
	if mem == nil || !mem.Write(dst, part) {
		return c.fail(codeMemory, fmt.Sprintf("udfhost_http.response_read: buffer at %#x+%d is outside guest memory", dst, len(part)))
	}
	return int32(len(part))
}

// hostResponseHeaders is response_headers(dst_ptr, dst_cap) -> i32.
func hostResponseHeaders(ctx context.Context, mod api.Module, stack []uint64) {
	c := egressFrom(ctx)
	stack[0] = i32result(c.responseHeaders(mod.Memory(), uint32(stack[0]), uint32(stack[1])))
}

func (c *egressCall) responseHeaders(mem api.Memory, dst, n uint32) int32 {
	if c == nil || c.rec == nil {
		return codeNoResponse
	}
	// The header block of the record: its count and fields, between the
	// status and the body's length.
	block := c.rec[4 : len(c.rec)-4-len(c.resp.Body)]
	return c.copyOut(mem, "response_headers", dst, n, block)
}

// hostLastError is last_error(dst_ptr, dst_cap) -> i32.
func hostLastError(ctx context.Context, mod api.Module, stack []uint64) {
	c := egressFrom(ctx)
	if c == nil {
		stack[0] = i32result(codeDenied)
		return
	}
	stack[0] = i32result(c.copyOut(mod.Memory(), "last_error", uint32(stack[0]), uint32(stack[1]), []byte(c.lastErr)))
}

// copyOut writes what fits of b at dst and returns b's full length, so a
// guest whose buffer was short can call again with a larger one.
func (c *egressCall) copyOut(mem api.Memory, fn string, dst, n uint32, b []byte) int32 {
	part := b[:min(len(b), int(n))]
	if mem == nil || !mem.Write(dst, part) {
		return c.fail(codeMemory, fmt.Sprintf("udfhost_http.%s: buffer at %#x+%d is outside guest memory", fn, dst, len(part)))
	}
	return int32(len(b))
}

// i32result is v as an i32 result on wazero's stack.
func i32result(v int32) uint64 { return uint64(uint32(v)) }
