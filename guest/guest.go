// Package guest is the Go SDK for writing udfhost user-defined functions
// against the batch ABI v1 (docs/ABI.md): one wasm call computes a whole
// batch of rows.
//
// A UDF is an exported function of a Go WebAssembly module built as a
// reactor. Each export takes the input region (ptr, n) and returns the packed
// output region; the SDK decodes the input, calls your code and encodes the
// result:
//
//	package main
//
//	import (
//		"strings"
//
//		"github.com/udfhost/udfhost/guest"
//	)
//
//	//go:wasmexport upper
//	func upper(ptr, n uint32) uint64 {
//		return guest.MapString(ptr, n, func(s string) (string, error) {
//			return strings.ToUpper(s), nil
//		})
//	}
//
//	func main() {}
//
// Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm .
//
// Importing this package is enough to export udfhost_abi_version and
// udfhost_alloc; main stays empty (the host calls _initialize, not main).
//
// The helpers MapString, MapBytes, MapInt64, MapInt64x2 and MapInt64x3 cover
// common shapes: a NULL argument gives a NULL result without calling the
// function, and a returned error becomes that row's error (reported to the
// caller as an error, not as NULL). CallRows does the same for any types
// through the Batch and Result accessors, and Call hands over the whole
// batch (check its signature with Batch.CheckArgs). A panic while computing a row becomes that row's error; a panic or
// error from a Call function fails every row of the batch with its message.
//
// VARCHAR arguments are valid UTF-8 in every non-NULL row (the host refuses
// other input), and VARCHAR results must be: a result row that is not
// becomes that row's error. Unicode tables come with the guest, from the Go
// toolchain it is built with (Unicode 15.0.0 for Go 1.26's unicode.Version)
// and, for full case mapping (strings.ToUpper maps one rune to one, so ß
// stays ß; SQL's UPPER gives SS), from golang.org/x/text/cases, as
// examples/go/upper does; docs/ABI.md ("Unicode in Go guests") has the
// versions.
//
// Strings and byte slices read from a Batch alias the input buffer and are
// valid only during the call; copy them (strings.Clone, bytes.Clone) to keep
// them. The SDK reuses its input and output buffers across calls, so steady
// batch shapes do not allocate. The input must lie in the buffer the SDK
// returned from udfhost_alloc (as the ABI requires); anything else, or a
// malformed input, makes the export return 0, failing the batch.
//
// A connector (a module uploaded as kind connector) may also reach HTTP
// services through its function's connections, and only them: HTTP, Do
// and Connection (http.go) call the host's egress broker through the
// udfhost_http import module; examples/go/enrich is one.
package guest

import "unsafe"

// abiVersion is the batch ABI version this SDK implements.
const abiVersion = 1

// maxAlloc bounds udfhost_alloc requests; larger ones return 0.
const maxAlloc = 1 << 31

//go:wasmexport udfhost_abi_version
func udfhostABIVersion() int32 { return abiVersion }

//go:wasmexport udfhost_alloc
func udfhostAlloc(size uint32) uint32 { return alloc(size) }

// inBuf is the input buffer handed to the host. Keeping it in a package
// variable keeps the GC from freeing it (Go's GC does not move objects);
// []uint64 makes it 8-byte aligned.
var inBuf []uint64

// alloc returns the address of at least size bytes of inBuf, growing it only
// when it is too small.
func alloc(size uint32) uint32 {
	if size > maxAlloc {
		return 0
	}
	words := max(int((uint64(size)+7)/8), 1)
	if words > cap(inBuf) {
		inBuf = nil // let the GC reclaim the old buffer if it must
		inBuf = make([]uint64, words)
	}
	inBuf = inBuf[:cap(inBuf)]
	return addrOf(inBuf)
}

// addrOf returns the linear-memory address of w's first word (on non-wasm
// platforms, where the SDK is only unit tested, its low 32 bits).
func addrOf(w []uint64) uint32 { return uint32(uintptr(unsafe.Pointer(&w[0]))) }

// asBytes views w as bytes.
func asBytes(w []uint64) []byte {
	if len(w) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*8)
}

// input returns the n bytes at ptr, which must lie inside inBuf.
func input(ptr, n uint32) ([]byte, bool) {
	if len(inBuf) == 0 {
		return nil, false
	}
	buf := asBytes(inBuf)
	off := uint64(ptr - addrOf(inBuf)) // wraps to a huge value when ptr is below inBuf
	if off+uint64(n) > uint64(len(buf)) {
		return nil, false
	}
	return buf[off : off+uint64(n) : off+uint64(n)], true
}

// Type is the SQL type of a column or result; the values are the ABI's type
// codes.
type Type uint32

// The SQL types.
const (
	Int     Type = 1 // int32
	BigInt  Type = 2 // int64
	Float   Type = 3 // float32
	Double  Type = 4 // float64
	Boolean Type = 5 // bool
	Varchar Type = 6 // UTF-8 string
	Bytes   Type = 7 // []byte
)

// String returns the SQL name of t, such as "BIGINT".
func (t Type) String() string {
	switch t {
	case Int:
		return "INT"
	case BigInt:
		return "BIGINT"
	case Float:
		return "FLOAT"
	case Double:
		return "DOUBLE"
	case Boolean:
		return "BOOLEAN"
	case Varchar:
		return "VARCHAR"
	case Bytes:
		return "BYTES"
	}
	return "type(" + itoa(int64(t)) + ")"
}

func (t Type) valid() bool  { return t >= Int && t <= Bytes }
func (t Type) varlen() bool { return t == Varchar || t == Bytes }

// width is the byte width of a fixed-width type, 0 for BOOLEAN (bits).
func (t Type) width() int {
	switch t {
	case Int, Float:
		return 4
	case BigInt, Double:
		return 8
	}
	return 0
}

// valuesLen is the size of a fixed-width values buffer of rows rows.
func (t Type) valuesLen(rows int) int {
	if w := t.width(); w > 0 {
		return w * rows
	}
	return bitmapLen(rows)
}

func bitmapLen(rows int) int { return (rows + 7) >> 3 }
func align8(n int) int       { return (n + 7) &^ 7 }

func le32(b []byte, off int) uint32 {
	b = b[off : off+4]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte, off int) uint64 {
	b = b[off : off+8]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func put32(b []byte, off int, v uint32) {
	b = b[off : off+4]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func put64(b []byte, off int, v uint64) {
	b = b[off : off+8]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	b[4], b[5], b[6], b[7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
}

// itoa formats v without strconv or fmt.
func itoa(v int64) string {
	var buf [20]byte
	i := len(buf)
	u := uint64(v)
	if v < 0 {
		u = -u
	}
	for {
		i--
		buf[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	if v < 0 {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}
