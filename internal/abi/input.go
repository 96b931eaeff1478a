package abi

import (
	"fmt"
	"math"
	"math/bits"
	"slices"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// ValidateBatch checks b against the function's argument types: column
// count, column types and buffer lengths (fixed width*rows, BOOLEAN
// ceil(rows/8), validity empty or ceil(rows/8), VARCHAR/BYTES offsets
// (rows+1)*4, starting at 0, monotonic, last <= len(values)). A VARCHAR or
// BYTES column of an empty batch may also have empty offsets. Errors name the
// column (1-based) and the problem.
func ValidateBatch(b *udfhostv1.Batch, types []udfhostv1.SqlType) error {
	if b == nil {
		return fmt.Errorf("batch is missing")
	}
	if len(b.Columns) != len(types) {
		return fmt.Errorf("batch has %d columns, the function takes %d arguments", len(b.Columns), len(types))
	}
	rows := int(b.Rows)
	for i, c := range b.Columns {
		if err := validateColumn(c, types[i], rows); err != nil {
			return fmt.Errorf("column %d: %w", i+1, err)
		}
	}
	if size := InputSize(b); uint64(size) > math.MaxUint32 {
		return fmt.Errorf("batch encodes to %d bytes, more than the 4 GiB a guest can address", size)
	}
	return nil
}

func validateColumn(c *udfhostv1.Column, want udfhostv1.SqlType, rows int) error {
	if c == nil {
		return fmt.Errorf("missing")
	}
	if !validType(want) {
		return fmt.Errorf("the function declares invalid argument %s", TypeName(want))
	}
	if c.Type != want {
		return fmt.Errorf("type %s, want %s", TypeName(c.Type), TypeName(want))
	}
	if n := len(c.Validity); n != 0 && n != bitmapLen(rows) {
		return fmt.Errorf("validity is %d bytes, want 0 or %d for %d rows", n, bitmapLen(rows), rows)
	}
	if !isVarlen(want) {
		if len(c.Offsets) != 0 {
			return fmt.Errorf("%s column has %d bytes of offsets, want none", TypeName(want), len(c.Offsets))
		}
		if n, w := len(c.Values), valuesLen(want, rows); n != w {
			return fmt.Errorf("values are %d bytes, want %d for %d %s rows", n, w, rows, TypeName(want))
		}
		return nil
	}
	if rows == 0 && len(c.Offsets) == 0 {
		return nil
	}
	if n, w := len(c.Offsets), (rows+1)*4; n != w {
		return fmt.Errorf("offsets are %d bytes, want %d for %d rows", n, w, rows)
	}
	return checkOffsets(c.Offsets, rows, uint64(len(c.Values)), true)
}

// checkOffsets checks rows+1 little-endian offsets (the buffer has at least
// that many): monotonic, the last <= limit and, if zeroFirst, the first 0.
// The offsets are int32 in Arrow; with a first offset >= 0 monotonicity
// means a reader may treat them as u32.
func checkOffsets(offs []byte, rows int, limit uint64, zeroFirst bool) error {
	offs = offs[:(rows+1)*4]
	prev := le.Uint32(offs)
	if zeroFirst && prev != 0 {
		return fmt.Errorf("first offset is %d, want 0", prev)
	}
	if prev > math.MaxInt32 {
		return fmt.Errorf("first offset %d is negative as int32", int32(prev))
	}
	for i := 4; i < len(offs); i += 4 {
		o := le.Uint32(offs[i:])
		if o < prev || o > math.MaxInt32 {
			return fmt.Errorf("offsets not monotonic at row %d (%d then %d)", i/4-1, int32(prev), int32(o))
		}
		prev = o
	}
	if uint64(prev) > limit {
		return fmt.Errorf("last offset %d is past the %d bytes of values", prev, limit)
	}
	return nil
}

// varlenEnd returns the last offset of a validated VARCHAR/BYTES column (0
// when it has no offsets).
func varlenEnd(c *udfhostv1.Column) int {
	if len(c.Offsets) < 4 {
		return 0
	}
	return int(le.Uint32(c.Offsets[len(c.Offsets)-4:]))
}

// InputSize returns the number of bytes AppendInput appends for b.
func InputSize(b *udfhostv1.Batch) int {
	size := inHeaderSize + inColSize*len(b.Columns)
	for _, c := range b.Columns {
		size += align8(len(c.Validity))
		if isVarlen(c.Type) {
			size += align8(max(len(c.Offsets), 4)) + align8(varlenEnd(c))
		} else {
			size += align8(len(c.Values))
		}
	}
	return size
}

var zeroOffset [4]byte

// AppendInput appends the batch v1 input region for b to dst and returns the
// extended slice. b must have passed ValidateBatch. Only the bytes of a
// VARCHAR/BYTES values buffer up to its last offset are copied.
func AppendInput(dst []byte, b *udfhostv1.Batch) []byte {
	size := InputSize(b)
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	r := dst[start:]
	le.PutUint32(r[0:], InputMagic)
	le.PutUint32(r[4:], Version)
	le.PutUint32(r[8:], b.Rows)
	le.PutUint32(r[12:], uint32(len(b.Columns)))
	pos := inHeaderSize + inColSize*len(b.Columns)
	for i, c := range b.Columns {
		d := r[inHeaderSize+inColSize*i : inHeaderSize+inColSize*(i+1)]
		var voff int
		if len(c.Validity) > 0 {
			voff = pos
			pos = putAligned(r, pos, c.Validity)
		}
		var ooff int
		values := c.Values
		if isVarlen(c.Type) {
			ooff = pos
			if len(c.Offsets) == 0 {
				pos = putAligned(r, pos, zeroOffset[:])
			} else {
				pos = putAligned(r, pos, c.Offsets)
			}
			values = values[:varlenEnd(c)]
		}
		valoff := pos
		pos = putAligned(r, pos, values)
		le.PutUint32(d[0:], uint32(c.Type))
		le.PutUint32(d[4:], uint32(voff))
		le.PutUint32(d[8:], uint32(ooff))
		le.PutUint32(d[12:], uint32(valoff))
		le.PutUint32(d[16:], uint32(len(values)))
		clear(d[20:32])
	}
	return dst
}

// putAligned copies src to r[pos:], zeroes the padding up to the next
// multiple of 8 and returns that position.
func putAligned(r []byte, pos int, src []byte) int {
	end := pos + copy(r[pos:], src)
	next := align8(end)
	clear(r[end:next])
	return next
}

// Input is a parsed, bounds-checked view of an input region; its buffers
// alias the parsed bytes.
type Input struct {
	Rows int
	Cols []Col
}

// Col is one column of an Input. Validity is nil when every row is valid.
// Offsets is set for VARCHAR and BYTES only. The accessors assume a Col from
// ParseInput and a row in [0, Rows).
type Col struct {
	Type     udfhostv1.SqlType
	Validity []byte
	Offsets  []byte
	Values   []byte
}

// ParseInput parses an input region received from the host, checking the
// header, every column descriptor, every buffer's alignment and bounds, and
// VARCHAR/BYTES offsets. Errors wrap ErrBadInput.
func ParseInput(buf []byte) (Input, error) {
	if len(buf) < inHeaderSize {
		return Input{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrBadInput, len(buf), inHeaderSize)
	}
	if m := le.Uint32(buf); m != InputMagic {
		return Input{}, fmt.Errorf("%w: magic %#x, want %#x", ErrBadInput, m, InputMagic)
	}
	if v := le.Uint32(buf[4:]); v != Version {
		return Input{}, fmt.Errorf("%w: version %d, want %d", ErrBadInput, v, Version)
	}
	rows := le.Uint32(buf[8:])
	ncols := le.Uint32(buf[12:])
	hdr := uint64(inHeaderSize) + uint64(ncols)*inColSize
	if hdr > uint64(len(buf)) {
		return Input{}, fmt.Errorf("%w: %d column descriptors do not fit in %d bytes", ErrBadInput, ncols, len(buf))
	}
	in := Input{Rows: int(rows), Cols: make([]Col, ncols)}
	for i := range in.Cols {
		if err := parseInputCol(buf, buf[inHeaderSize+inColSize*i:], int(hdr), in.Rows, &in.Cols[i]); err != nil {
			return Input{}, fmt.Errorf("%w: column %d: %w", ErrBadInput, i+1, err)
		}
	}
	return in, nil
}

func parseInputCol(buf, d []byte, hdr, rows int, c *Col) error {
	c.Type = udfhostv1.SqlType(le.Uint32(d))
	voff, ooff := le.Uint32(d[4:]), le.Uint32(d[8:])
	valoff, vallen := le.Uint32(d[12:]), le.Uint32(d[16:])
	if !validType(c.Type) {
		return fmt.Errorf("invalid type code %d", uint32(c.Type))
	}
	if le.Uint32(d[20:])|le.Uint32(d[24:])|le.Uint32(d[28:]) != 0 {
		return fmt.Errorf("reserved descriptor fields are not 0")
	}
	var err error
	if voff != 0 {
		if c.Validity, err = inputBuf(buf, hdr, "validity", voff, uint64(bitmapLen(rows))); err != nil {
			return err
		}
	}
	if c.Values, err = inputBuf(buf, hdr, "values", valoff, uint64(vallen)); err != nil {
		return err
	}
	if !isVarlen(c.Type) {
		if ooff != 0 {
			return fmt.Errorf("%s column has offsets_off %d, want 0", TypeName(c.Type), ooff)
		}
		if uint64(vallen) != uint64(valuesLen(c.Type, rows)) {
			return fmt.Errorf("values_len %d does not match %d %s rows", vallen, rows, TypeName(c.Type))
		}
		return nil
	}
	if ooff == 0 {
		return fmt.Errorf("%s column has no offsets", TypeName(c.Type))
	}
	if c.Offsets, err = inputBuf(buf, hdr, "offsets", ooff, (uint64(rows)+1)*4); err != nil {
		return err
	}
	return checkOffsets(c.Offsets, rows, uint64(vallen), true)
}

// inputBuf returns buf[off:off+n] after checking that it is 8-aligned, after
// the header and inside buf.
func inputBuf(buf []byte, hdr int, name string, off uint32, n uint64) ([]byte, error) {
	if off%8 != 0 {
		return nil, fmt.Errorf("%s at %d is not 8-byte aligned", name, off)
	}
	if end, carry := bits.Add64(uint64(off), n, 0); carry != 0 || end > uint64(len(buf)) {
		return nil, fmt.Errorf("%s [%d, +%d) is outside the %d-byte region", name, off, n, len(buf))
	}
	if n > 0 && int(off) < hdr {
		return nil, fmt.Errorf("%s at %d overlaps the %d-byte header", name, off, hdr)
	}
	return buf[off : uint64(off)+n : uint64(off)+n], nil
}

// Valid reports whether row i is not NULL.
func (c *Col) Valid(i int) bool { return c.Validity == nil || bitSet(c.Validity, i) }

// Int32 returns row i of an INT column.
func (c *Col) Int32(i int) int32 { return int32(le.Uint32(c.Values[4*i:])) }

// Int64 returns row i of a BIGINT column.
func (c *Col) Int64(i int) int64 { return int64(le.Uint64(c.Values[8*i:])) }

// Float32 returns row i of a FLOAT column.
func (c *Col) Float32(i int) float32 { return math.Float32frombits(le.Uint32(c.Values[4*i:])) }

// Float64 returns row i of a DOUBLE column.
func (c *Col) Float64(i int) float64 { return math.Float64frombits(le.Uint64(c.Values[8*i:])) }

// Bool returns row i of a BOOLEAN column.
func (c *Col) Bool(i int) bool { return bitSet(c.Values, i) }

// Bytes returns row i of a VARCHAR or BYTES column; it aliases the input.
func (c *Col) Bytes(i int) []byte {
	s, e := le.Uint32(c.Offsets[4*i:]), le.Uint32(c.Offsets[4*i+4:])
	return c.Values[s:e:e]
}
