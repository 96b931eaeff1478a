package abi

import "github.com/udfhost/udfhost/internal/udf"

// Batch is a batch of rows in the API's Arrow layout, as the proto edge
// hands it over: the same fields as the API's Batch message, so converting
// copies slice headers, never bytes. It is its own type so that the code on
// both sides of the worker boundary links no gRPC.
type Batch struct {
	Rows    uint32
	Columns []*Column
}

// Column is one column of a Batch (see the API's Column message): Arrow's
// validity bitmap, int32 offsets for VARCHAR and BYTES, the values, and
// Arrow's array offset, in rows, into all three.
type Column struct {
	Type     udf.Type
	Validity []byte
	Offsets  []byte
	Values   []byte
	Offset   uint32
}

// RowError is a per-row failure a guest reported (see the API's RowError).
type RowError struct {
	Row     uint32
	Message string
}
