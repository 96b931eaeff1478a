package guest

import (
	"errors"
	"math"
	"unsafe"
)

const inputMagic = 0x42464455 // "UDFB"

// Batch is the input of one call: Rows() rows of NumCols() argument columns.
// It and everything read from it are valid only during the call.
type Batch struct {
	rows int
	cols []Column
}

// Rows returns the number of rows in the batch.
func (b *Batch) Rows() int { return b.rows }

// NumCols returns the number of argument columns.
func (b *Batch) NumCols() int { return len(b.cols) }

// Col returns argument column i (0-based); it panics if i is out of range.
func (b *Batch) Col(i int) *Column { return &b.cols[i] }

// anyNull reports whether any argument of row is NULL.
func (b *Batch) anyNull(row int) bool {
	for i := range b.cols {
		if b.cols[i].IsNull(row) {
			return true
		}
	}
	return false
}

// CheckArgs returns an error unless the batch's columns have exactly the
// given types, for Call functions to check their signature up front.
func (b *Batch) CheckArgs(types ...Type) error {
	ok := len(b.cols) == len(types)
	for i := 0; ok && i < len(types); i++ {
		ok = b.cols[i].typ == types[i]
	}
	if ok {
		return nil
	}
	return errors.New("guest: function takes " + typeList(types) + ", called with " + b.typeList())
}

func (b *Batch) typeList() string {
	types := make([]Type, len(b.cols))
	for i := range b.cols {
		types[i] = b.cols[i].typ
	}
	return typeList(types)
}

func typeList(types []Type) string {
	s := "("
	for i, t := range types {
		if i > 0 {
			s += ", "
		}
		s += t.String()
	}
	return s + ")"
}

// parse decodes and checks an input region into b, reusing b's memory. It
// reports false for anything malformed.
func (b *Batch) parse(buf []byte) bool {
	if len(buf) < 16 || le32(buf, 0) != inputMagic || le32(buf, 4) != abiVersion {
		return false
	}
	rows, ncols := le32(buf, 8), le32(buf, 12)
	if 16+uint64(ncols)*32 > uint64(len(buf)) {
		return false
	}
	b.rows = int(rows)
	if int(ncols) > cap(b.cols) {
		b.cols = make([]Column, ncols)
	}
	b.cols = b.cols[:ncols]
	for i := range b.cols {
		d := buf[16+32*i : 16+32*(i+1)]
		c := &b.cols[i]
		*c = Column{typ: Type(le32(d, 0)), index: i}
		if !c.typ.valid() {
			return false
		}
		var ok bool
		if voff := le32(d, 4); voff != 0 {
			if c.validity, ok = sub(buf, voff, uint64(bitmapLen(b.rows))); !ok {
				return false
			}
		}
		if c.values, ok = sub(buf, le32(d, 12), uint64(le32(d, 16))); !ok {
			return false
		}
		if !c.typ.varlen() {
			if uint64(len(c.values)) != uint64(c.typ.valuesLen(b.rows)) {
				return false
			}
			continue
		}
		if c.offsets, ok = sub(buf, le32(d, 8), (uint64(rows)+1)*4); !ok || le32(d, 8) == 0 {
			return false
		}
		if le32(c.offsets, 0) != 0 {
			return false
		}
		prev := uint32(0)
		for j := 4; j < len(c.offsets); j += 4 {
			o := le32(c.offsets, j)
			if o < prev {
				return false
			}
			prev = o
		}
		if uint64(prev) > uint64(len(c.values)) {
			return false
		}
	}
	return true
}

// sub returns buf[off:off+n] if it is in bounds.
func sub(buf []byte, off uint32, n uint64) ([]byte, bool) {
	end := uint64(off) + n
	if end > uint64(len(buf)) {
		return nil, false
	}
	return buf[off:end:end], true
}

// Column is one argument column of a Batch. Its accessors panic when the
// column's type does not match (inside a row function that makes the row
// fail) or the row is out of range.
type Column struct {
	typ      Type
	index    int
	validity []byte
	offsets  []byte
	values   []byte
}

// Type returns the column's SQL type.
func (c *Column) Type() Type { return c.typ }

// IsNull reports whether the value in row is NULL.
func (c *Column) IsNull(row int) bool {
	return c.validity != nil && c.validity[row>>3]&(1<<(uint(row)&7)) == 0
}

func (c *Column) want(t Type) {
	if c.typ != t {
		panic(typeError(c, t.String()))
	}
}

func typeError(c *Column, want string) error {
	return errors.New("guest: column " + itoa(int64(c.index)) + " is " + c.typ.String() + ", not " + want)
}

// Int32 returns row of an INT column.
func (c *Column) Int32(row int) int32 {
	c.want(Int)
	return int32(le32(c.values, 4*row))
}

// Int64 returns row of a BIGINT column.
func (c *Column) Int64(row int) int64 {
	c.want(BigInt)
	return int64(le64(c.values, 8*row))
}

// Float32 returns row of a FLOAT column.
func (c *Column) Float32(row int) float32 {
	c.want(Float)
	return math.Float32frombits(le32(c.values, 4*row))
}

// Float64 returns row of a DOUBLE column.
func (c *Column) Float64(row int) float64 {
	c.want(Double)
	return math.Float64frombits(le64(c.values, 8*row))
}

// Bool returns row of a BOOLEAN column.
func (c *Column) Bool(row int) bool {
	c.want(Boolean)
	return c.values[row>>3]&(1<<(uint(row)&7)) != 0
}

// span returns the byte range of row of a VARCHAR or BYTES column.
func (c *Column) span(row int) (int, int) {
	if !c.typ.varlen() {
		panic(typeError(c, "VARCHAR or BYTES"))
	}
	return int(le32(c.offsets, 4*row)), int(le32(c.offsets, 4*row+4))
}

// String returns row of a VARCHAR or BYTES column without copying; it is
// valid only during the call.
func (c *Column) String(row int) string {
	s, e := c.span(row)
	if s == e {
		return ""
	}
	return unsafe.String(&c.values[s], e-s)
}

// Bytes returns row of a VARCHAR or BYTES column without copying; it is
// valid only during the call and must not be modified.
func (c *Column) Bytes(row int) []byte {
	s, e := c.span(row)
	return c.values[s:e:e]
}
