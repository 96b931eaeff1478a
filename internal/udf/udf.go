// Package udf names what a function's interface is made of: the SQL types
// of its arguments and result, and the ABI it is called through.
//
// It is a leaf of the import graph, shared by both sides of the process
// boundary: the host (server, functions, the proto edge, which converts to
// and from the generated udfhostv1 types) and the jailed worker, which must
// not link gRPC. Its values are the numbers the API and the on-disk
// function records already use, so converting is a cast.
package udf

import "strconv"

// Type is a SQL type of a column, an argument or a result. Its values are
// those of the API's SqlType enum.
type Type int32

// SQL types.
const (
	Unspecified Type = 0
	Int         Type = 1 // int32
	BigInt      Type = 2 // int64
	Float       Type = 3 // float32
	Double      Type = 4 // float64
	Boolean     Type = 5 // Arrow bit-packed
	Varchar     Type = 6 // UTF-8, int32 offsets + data
	Bytes       Type = 7 // int32 offsets + data
)

// Valid reports whether t is one of the SQL types (not Unspecified).
func (t Type) Valid() bool { return t >= Int && t <= Bytes }

// Width is the size in bytes of one value of a fixed-width numeric type
// (INT, FLOAT: 4; BIGINT, DOUBLE: 8), 0 for the others.
func (t Type) Width() int {
	switch t {
	case Int, Float:
		return 4
	case BigInt, Double:
		return 8
	}
	return 0
}

// Varlen reports whether t's values have offsets and data (VARCHAR, BYTES).
func (t Type) Varlen() bool { return t == Varchar || t == Bytes }

var typeNames = [...]string{Int: "INT", BigInt: "BIGINT", Float: "FLOAT", Double: "DOUBLE",
	Boolean: "BOOLEAN", Varchar: "VARCHAR", Bytes: "BYTES"}

// String returns the SQL name of t ("BIGINT"), or says that t is unset or
// unknown, with its number.
func (t Type) String() string {
	switch {
	case t.Valid():
		return typeNames[t]
	case t == Unspecified:
		// Not "type N": every message already says "type" before a name
		// ("type type 0, want BIGINT").
		return "unset (TYPE_UNSPECIFIED)"
	}
	return "unknown (SqlType " + strconv.FormatInt(int64(t), 10) + ")"
}

// ABI selects how a function is called; see docs/ABI.md. Its values are
// those of the API's ABI enum.
type ABI uint8

// ABIs. The zero value is "not chosen": the API's ABI_UNSPECIFIED, which
// functions resolves from the module before anything runs.
const (
	ABIDirect ABI = 1 // one wasm call per row, numeric types only
	ABIBatch  ABI = 2 // batch v1 through guest memory
)

// String returns "direct", "batch", "unspecified", or the number of an
// unknown ABI.
func (a ABI) String() string {
	switch a {
	case ABIDirect:
		return "direct"
	case ABIBatch:
		return "batch"
	case 0:
		return "unspecified"
	}
	return strconv.Itoa(int(a))
}

// Wasm value types in their binary encoding (the values of wazero's
// api.ValueType), for the direct ABI's mapping.
const (
	WasmI32 byte = 0x7f
	WasmI64 byte = 0x7e
	WasmF32 byte = 0x7d
	WasmF64 byte = 0x7c
)

// DirectWasmType is the wasm value type t maps to in the direct ABI, or 0
// if t has no direct mapping (VARCHAR, BYTES).
func (t Type) DirectWasmType() byte {
	switch t {
	case Int, Boolean:
		return WasmI32
	case BigInt:
		return WasmI64
	case Float:
		return WasmF32
	case Double:
		return WasmF64
	}
	return 0
}
