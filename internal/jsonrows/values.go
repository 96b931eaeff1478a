package jsonrows

import (
	"encoding/base64"
	"encoding/binary"
	"math"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// RowError is how a failed row is printed.
type RowError struct {
	Error string `json:"error"`
}

// Values turns a response's result column and row errors into one JSON
// value per row: the value, nil for NULL, or a RowError. The response must
// have passed the server's checks; a malformed one yields NULLs, not panics.
func Values(resp *udfhostv1.InvokeResponse) []any {
	rows := int(resp.Rows)
	out := make([]any, rows)
	col := resp.Result
	if col == nil {
		return out
	}
	// Results from the service have offset 0; a column with an offset (an
	// Arrow slice) is read from its element o on, like any Arrow reader.
	o := int(col.Offset)
	for r := 0; r < rows; r++ {
		if i := o + r; len(col.Validity) > 0 && (i/8 >= len(col.Validity) || col.Validity[i/8]&(1<<(i%8)) == 0) {
			continue
		}
		out[r] = value(col, o+r)
	}
	for _, e := range resp.Errors {
		if int(e.Row) < rows {
			out[e.Row] = RowError{Error: e.Message}
		}
	}
	return out
}

// value returns element r of c's buffers (row r-c.Offset).
func value(c *udfhostv1.Column, r int) any {
	v := c.Values
	switch c.Type {
	case udfhostv1.SqlType_TYPE_INT:
		if len(v) >= 4*(r+1) {
			return int32(binary.LittleEndian.Uint32(v[4*r:]))
		}
	case udfhostv1.SqlType_TYPE_BIGINT:
		if len(v) >= 8*(r+1) {
			return int64(binary.LittleEndian.Uint64(v[8*r:]))
		}
	case udfhostv1.SqlType_TYPE_FLOAT:
		if len(v) >= 4*(r+1) {
			return jsonFloat(float64(math.Float32frombits(binary.LittleEndian.Uint32(v[4*r:]))))
		}
	case udfhostv1.SqlType_TYPE_DOUBLE:
		if len(v) >= 8*(r+1) {
			return jsonFloat(math.Float64frombits(binary.LittleEndian.Uint64(v[8*r:])))
		}
	case udfhostv1.SqlType_TYPE_BOOLEAN:
		if r/8 < len(v) {
			return v[r/8]&(1<<(r%8)) != 0
		}
	case udfhostv1.SqlType_TYPE_VARCHAR, udfhostv1.SqlType_TYPE_BYTES:
		o := c.Offsets
		if len(o) < 4*(r+2) {
			return nil
		}
		start, end := binary.LittleEndian.Uint32(o[4*r:]), binary.LittleEndian.Uint32(o[4*(r+1):])
		if start > end || int(end) > len(v) {
			return nil
		}
		if c.Type == udfhostv1.SqlType_TYPE_VARCHAR {
			return string(v[start:end])
		}
		return base64.StdEncoding.EncodeToString(v[start:end])
	}
	return nil
}

// jsonFloat keeps NaN and infinities printable, as the strings AddLine reads.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}
