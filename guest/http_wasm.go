//go:build wasip1

package guest

import (
	"runtime"
	"unsafe"
)

// The udfhost_http import module (docs/ABI.md), and the SDK's calls of
// it on slices.

//go:wasmimport udfhost_http request
func wasmRequest(reqPtr, reqLen, respPtr, respCap uint32) int64

//go:wasmimport udfhost_http response_read
func wasmResponseRead(offset, dstPtr, dstCap uint32) int32

//go:wasmimport udfhost_http response_headers
func wasmResponseHeaders(dstPtr, dstCap uint32) int32

//go:wasmimport udfhost_http last_error
func wasmLastError(dstPtr, dstCap uint32) int32

func hostRequest(req, resp []byte) int64 {
	r := wasmRequest(ptrOf(req), uint32(len(req)), ptrOf(resp), uint32(len(resp)))
	runtime.KeepAlive(req)
	runtime.KeepAlive(resp)
	return r
}

func hostResponseRead(offset uint32, dst []byte) int32 {
	n := wasmResponseRead(offset, ptrOf(dst), uint32(len(dst)))
	runtime.KeepAlive(dst)
	return n
}

func hostResponseHeaders(dst []byte) int32 {
	n := wasmResponseHeaders(ptrOf(dst), uint32(len(dst)))
	runtime.KeepAlive(dst)
	return n
}

func hostLastError(dst []byte) int32 {
	n := wasmLastError(ptrOf(dst), uint32(len(dst)))
	runtime.KeepAlive(dst)
	return n
}

// ptrOf is the linear-memory address of b's first byte (0 for an empty
// slice, from which the host reads nothing).
func ptrOf(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
