// Package jsonrows converts between JSON rows (one JSON array of arguments
// per line, as `udfhost invoke` reads them) and columnar batches.
package jsonrows

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/udfhost/udfhost/internal/udf"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// Builder accumulates rows for a function's argument types.
type Builder struct {
	types []udfhostv1.SqlType
	cols  []*udfhostv1.Column
	rows  int
	nulls []bool // per column: saw a NULL
}

// NewBuilder returns a builder for rows of the given types.
func NewBuilder(types []udfhostv1.SqlType) *Builder {
	b := &Builder{types: types}
	b.Reset()
	return b
}

// Reset empties the builder.
func (b *Builder) Reset() {
	b.rows = 0
	b.cols = make([]*udfhostv1.Column, len(b.types))
	b.nulls = make([]bool, len(b.types))
	for i, t := range b.types {
		b.cols[i] = &udfhostv1.Column{Type: t}
		if t == udfhostv1.SqlType_TYPE_VARCHAR || t == udfhostv1.SqlType_TYPE_BYTES {
			b.cols[i].Offsets = make([]byte, 4)
		}
	}
}

// Rows is how many rows were added since the last Reset.
func (b *Builder) Rows() int { return b.rows }

// AddLine parses one JSON array and appends it as a row. On error nothing is
// appended.
func (b *Builder) AddLine(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var vals []any
	if err := dec.Decode(&vals); err != nil {
		return fmt.Errorf("row is not a JSON array: %v", err)
	}
	if len(vals) != len(b.types) {
		return fmt.Errorf("row has %d values, function takes %d", len(vals), len(b.types))
	}
	// Encode every value first so a bad one leaves the columns untouched.
	enc := make([][]byte, len(vals))
	for i, v := range vals {
		if v == nil {
			continue
		}
		e, err := encode(b.types[i], v)
		if err != nil {
			return fmt.Errorf("argument %d: %v", i+1, err)
		}
		enc[i] = e
	}
	for i, t := range b.types {
		c := b.cols[i]
		valid := vals[i] != nil
		if !valid {
			b.nulls[i] = true
		}
		if b.rows%8 == 0 {
			c.Validity = append(c.Validity, 0)
		}
		if valid {
			c.Validity[b.rows/8] |= 1 << (b.rows % 8)
		}
		switch t {
		case udfhostv1.SqlType_TYPE_BOOLEAN:
			if b.rows%8 == 0 {
				c.Values = append(c.Values, 0)
			}
			if valid && enc[i][0] == 1 {
				c.Values[b.rows/8] |= 1 << (b.rows % 8)
			}
		case udfhostv1.SqlType_TYPE_VARCHAR, udfhostv1.SqlType_TYPE_BYTES:
			c.Values = append(c.Values, enc[i]...)
			c.Offsets = binary.LittleEndian.AppendUint32(c.Offsets, uint32(len(c.Values)))
		default:
			if valid {
				c.Values = append(c.Values, enc[i]...)
			} else {
				c.Values = append(c.Values, make([]byte, width(t))...)
			}
		}
	}
	b.rows++
	return nil
}

// Batch returns the rows added so far. Columns without NULLs carry no
// validity bitmap.
func (b *Builder) Batch() *udfhostv1.Batch {
	for i, c := range b.cols {
		if !b.nulls[i] {
			c.Validity = nil
		}
	}
	return &udfhostv1.Batch{Rows: uint32(b.rows), Columns: b.cols}
}

func width(t udfhostv1.SqlType) int { return udf.Type(t).Width() }

func encode(t udfhostv1.SqlType, v any) ([]byte, error) {
	name := udf.Type(t).String()
	switch t {
	case udfhostv1.SqlType_TYPE_INT, udfhostv1.SqlType_TYPE_BIGINT:
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("want a number for %s, got %s", name, describe(v))
		}
		bits := 64
		if t == udfhostv1.SqlType_TYPE_INT {
			bits = 32
		}
		i, err := strconv.ParseInt(n.String(), 10, bits)
		if err != nil {
			return nil, fmt.Errorf("%s is not a %s", n, name)
		}
		if bits == 32 {
			return binary.LittleEndian.AppendUint32(nil, uint32(int32(i))), nil
		}
		return binary.LittleEndian.AppendUint64(nil, uint64(i)), nil
	case udfhostv1.SqlType_TYPE_FLOAT, udfhostv1.SqlType_TYPE_DOUBLE:
		f, err := parseFloat(v)
		if err != nil {
			return nil, fmt.Errorf("want a number for %s: %v", name, err)
		}
		if t == udfhostv1.SqlType_TYPE_FLOAT {
			return binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(f))), nil
		}
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(f)), nil
	case udfhostv1.SqlType_TYPE_BOOLEAN:
		bv, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want true or false for BOOLEAN, got %s", describe(v))
		}
		if bv {
			return []byte{1}, nil
		}
		return []byte{0}, nil
	case udfhostv1.SqlType_TYPE_VARCHAR:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string for VARCHAR, got %s", describe(v))
		}
		return []byte(s), nil
	case udfhostv1.SqlType_TYPE_BYTES:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a base64 string for BYTES, got %s", describe(v))
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("BYTES value is not base64: %v", err)
		}
		return raw, nil
	}
	return nil, fmt.Errorf("unsupported type %s", name)
}

func parseFloat(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return strconv.ParseFloat(x.String(), 64)
	case string: // JSON has no NaN or infinities
		switch x {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
	}
	return 0, fmt.Errorf("got %s", describe(v))
}

func describe(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 40 {
		b = append(b[:40], "..."...)
	}
	return string(b)
}
