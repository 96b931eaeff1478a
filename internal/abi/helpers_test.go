package abi

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"testing"

	"github.com/udfhost/udfhost/internal/udf"
)

var allTypes = []udf.Type{udf.Int, udf.BigInt, udf.Float, udf.Double, udf.Boolean, udf.Varchar, udf.Bytes}

// sampleNull is the NULL pattern of sample columns: rows 1, 4, 7, ...
func sampleNull(i int) bool { return i%3 == 1 }

// sampleValue is the value of row i of a sample column of type t, as
// returned by colValue.
func sampleValue(t udf.Type, i int) any {
	switch t {
	case udf.Int:
		return int32(i*7 - 50)
	case udf.BigInt:
		return int64(i)*1_000_000_000_000 - 3
	case udf.Float:
		return float32(i) * 1.5
	case udf.Double:
		return float64(i) * -2.25
	case udf.Boolean:
		return i%2 == 0
	case udf.Varchar:
		if i%4 == 0 {
			return "" // empty strings, distinct from NULL
		}
		return "row " + strconv.Itoa(i) + " é"
	case udf.Bytes:
		return string(bytes.Repeat([]byte{byte(i), 0}, i%5))
	}
	panic("bad type")
}

// colBuilder builds a proto column the way a caller would.
type colBuilder struct {
	c    Column
	rows int
	null bool
}

func newColBuilder(t udf.Type) *colBuilder {
	b := &colBuilder{c: Column{Type: t}}
	if t.Varlen() {
		b.c.Offsets = binary.LittleEndian.AppendUint32(nil, 0)
	}
	return b
}

// add appends a row; v nil means NULL.
func (b *colBuilder) add(v any) {
	i := b.rows
	b.rows++
	if len(b.c.Validity) < bitmapLen(b.rows) {
		b.c.Validity = append(b.c.Validity, 0)
	}
	if v != nil {
		b.c.Validity[i>>3] |= 1 << (i & 7)
	} else {
		b.null = true
	}
	le := binary.LittleEndian
	switch b.c.Type {
	case udf.Int:
		x, _ := v.(int32)
		b.c.Values = le.AppendUint32(b.c.Values, uint32(x))
	case udf.BigInt:
		x, _ := v.(int64)
		b.c.Values = le.AppendUint64(b.c.Values, uint64(x))
	case udf.Float:
		x, _ := v.(float32)
		b.c.Values = le.AppendUint32(b.c.Values, math.Float32bits(x))
	case udf.Double:
		x, _ := v.(float64)
		b.c.Values = le.AppendUint64(b.c.Values, math.Float64bits(x))
	case udf.Boolean:
		if len(b.c.Values) < bitmapLen(b.rows) {
			b.c.Values = append(b.c.Values, 0)
		}
		if x, _ := v.(bool); x {
			b.c.Values[i>>3] |= 1 << (i & 7)
		}
	case udf.Varchar, udf.Bytes:
		x, _ := v.(string)
		b.c.Values = append(b.c.Values, x...)
		b.c.Offsets = le.AppendUint32(b.c.Offsets, uint32(len(b.c.Values)))
	}
}

// column returns the column; the validity bitmap is dropped when every row
// is valid.
func (b *colBuilder) column() *Column {
	c := &Column{Type: b.c.Type, Validity: b.c.Validity, Offsets: b.c.Offsets, Values: b.c.Values}
	if !b.null {
		c.Validity = nil
	}
	return c
}

// sampleColumn returns a column of rows sample values of type t, with NULLs
// if nulls is set.
func sampleColumn(t udf.Type, rows int, nulls bool) *Column {
	b := newColBuilder(t)
	for i := range rows {
		if nulls && sampleNull(i) {
			b.add(nil)
		} else {
			b.add(sampleValue(t, i))
		}
	}
	return b.column()
}

// colValue returns row i of c as the dynamic type sampleValue uses, or nil
// for NULL.
func colValue(c *Col, i int) any {
	if !c.Valid(i) {
		return nil
	}
	switch c.Type {
	case udf.Int:
		return c.Int32(i)
	case udf.BigInt:
		return c.Int64(i)
	case udf.Float:
		return c.Float32(i)
	case udf.Double:
		return c.Float64(i)
	case udf.Boolean:
		return c.Bool(i)
	case udf.Varchar, udf.Bytes:
		return string(c.Bytes(i))
	}
	return "bad type"
}

// protoCol views a proto column as a Col.
func protoCol(c *Column) *Col {
	col := &Col{Type: c.Type, Validity: c.Validity, Offsets: c.Offsets, Values: c.Values}
	if len(col.Validity) == 0 {
		col.Validity = nil
	}
	return col
}

// sameValue compares two colValue results, treating NaN as equal to itself.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case float32:
		y, ok := b.(float32)
		return ok && (x == y || x != x && y != y)
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || x != x && y != y)
	}
	return a == b
}

// checkColumn compares every row of got with want.
func checkColumn(t *testing.T, name string, got, want *Col, rows int) {
	t.Helper()
	for i := range rows {
		if g, w := colValue(got, i), colValue(want, i); !sameValue(g, w) {
			t.Errorf("%s row %d = %#v, want %#v", name, i, g, w)
		}
	}
}

// rawOutput describes an output region as a guest might lay it out.
type rawOutput struct {
	rows      int
	typ       udf.Type
	validity  []byte // nil: none
	offsets   []byte // VARCHAR/BYTES
	values    []byte
	errRows   []uint32
	errMsgs   []string
	shift     uint32 // prepend this many garbage bytes to values and shift offsets
	gap       int    // bytes of garbage between buffers (0: packed)
	noOffsets bool
}

// write lays the region out in mem at ptr and returns its length.
func (o rawOutput) write(mem []byte, ptr int) uint32 {
	le := binary.LittleEndian
	r := mem[ptr:]
	pos := outHeaderSize + o.gap
	put := func(b []byte) int {
		off := pos
		copy(r[pos:], b)
		pos += len(b)
		for range o.gap {
			r[pos] = 0xAB
			pos++
		}
		return off
	}
	voff := 0
	if o.validity != nil {
		voff = put(o.validity)
	}
	ooff := 0
	values := o.values
	if o.typ.Varlen() && !o.noOffsets {
		offs := make([]byte, len(o.offsets))
		for i := 0; i < len(offs); i += 4 {
			le.PutUint32(offs[i:], le.Uint32(o.offsets[i:])+o.shift)
		}
		ooff = put(offs)
		values = append(bytes.Repeat([]byte{'#'}, int(o.shift)), values...)
	}
	valoff := put(values)
	msgOffs := make([]int, len(o.errMsgs))
	for i, m := range o.errMsgs {
		msgOffs[i] = put([]byte(m))
	}
	eoff := pos
	for i, row := range o.errRows {
		le.PutUint32(r[pos:], row)
		le.PutUint32(r[pos+4:], uint32(msgOffs[i]))
		le.PutUint32(r[pos+8:], uint32(len(o.errMsgs[i])))
		pos += errEntrySize
	}
	putOutputHeader(r, o.rows, o.typ, voff, ooff, valoff, len(values), len(o.errRows), eoff)
	return uint32(pos)
}

// rawFromColumn describes c as an output region.
func rawFromColumn(c *Column, rows int) rawOutput {
	return rawOutput{rows: rows, typ: c.Type, validity: c.Validity, offsets: c.Offsets, values: c.Values}
}
