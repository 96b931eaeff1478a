// Package abipb converts between the API's generated messages
// (udfhostv1.Batch, Column, RowError) and package abi's views of them.
//
// It is the proto edge of the ABI: package abi itself links no gRPC, so the
// jailed worker, which lays out and reads the same regions, does not
// either. Conversions copy slice headers, never the bytes.
package abipb

import (
	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/udf"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// FromBatch views an API batch as the ABI's. A nil batch is a batch of 0 rows.
func FromBatch(b *udfhostv1.Batch) *abi.Batch {
	if b == nil {
		return &abi.Batch{}
	}
	out := &abi.Batch{Rows: b.Rows, Columns: make([]*abi.Column, len(b.Columns))}
	cols := make([]abi.Column, len(b.Columns))
	for i, c := range b.Columns {
		if c == nil {
			continue
		}
		cols[i] = abi.Column{Type: udf.Type(c.Type), Validity: c.Validity, Offsets: c.Offsets, Values: c.Values, Offset: c.Offset}
		out.Columns[i] = &cols[i]
	}
	return out
}

// ToTypes converts SQL types to the API's.
func ToTypes(ts []udf.Type) []udfhostv1.SqlType {
	out := make([]udfhostv1.SqlType, len(ts))
	for i, t := range ts {
		out[i] = udfhostv1.SqlType(t)
	}
	return out
}

// ToColumn converts a column to the API's.
func ToColumn(c *abi.Column) *udfhostv1.Column {
	return &udfhostv1.Column{Type: udfhostv1.SqlType(c.Type), Validity: c.Validity, Offsets: c.Offsets, Values: c.Values, Offset: c.Offset}
}

// ToRowErrors converts per-row errors to the API's; none is nil.
func ToRowErrors(errs []*abi.RowError) []*udfhostv1.RowError {
	if len(errs) == 0 {
		return nil
	}
	structs := make([]udfhostv1.RowError, len(errs))
	out := make([]*udfhostv1.RowError, len(errs))
	for i, e := range errs {
		structs[i].Row, structs[i].Message = e.Row, e.Message
		out[i] = &structs[i]
	}
	return out
}

// FromTypes converts the API's SQL types.
func FromTypes(ts []udfhostv1.SqlType) []udf.Type {
	out := make([]udf.Type, len(ts))
	for i, t := range ts {
		out[i] = udf.Type(t)
	}
	return out
}
