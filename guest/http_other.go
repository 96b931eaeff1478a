//go:build !wasip1

package guest

// Outside wasm (the SDK's own unit tests) udfhost_http is testHost, a
// stand-in with the import module's semantics on slices.

// fakeHost answers requests in the SDK's tests.
type fakeHost struct {
	// answer gets the request record; it returns a status, a header
	// block and a body, or a negative code and its message.
	answer  func(rec []byte) (status int, headers, body []byte, code int64, msg string)
	headers []byte
	body    []byte
	lastErr string
	has     bool
}

var testHost fakeHost

func hostRequest(req, resp []byte) int64 {
	h := &testHost
	h.has = false
	if h.answer == nil {
		h.lastErr = "udfhost_http exists only in a wasm guest"
		return CodeDenied
	}
	status, headers, body, code, msg := h.answer(append([]byte(nil), req...))
	if code < 0 {
		h.lastErr = msg
		return code
	}
	h.headers, h.body, h.has = headers, body, true
	copy(resp, body)
	return int64(status)<<32 | int64(len(body))
}

func hostResponseRead(offset uint32, dst []byte) int32 {
	h := &testHost
	if !h.has {
		return CodeNoResponse
	}
	if int(offset) >= len(h.body) {
		return 0
	}
	return int32(copy(dst, h.body[offset:]))
}

func hostResponseHeaders(dst []byte) int32 {
	h := &testHost
	if !h.has {
		return CodeNoResponse
	}
	copy(dst, h.headers)
	return int32(len(h.headers))
}

func hostLastError(dst []byte) int32 {
	copy(dst, testHost.lastErr)
	return int32(len(testHost.lastErr))
}
