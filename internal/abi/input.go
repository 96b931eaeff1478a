package abi

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"unicode/utf8"

	"github.com/udfhost/udfhost/internal/udf"
)

// ValidateBatch checks b against the function's argument types: column
// count, column types and buffer lengths, with the rules of docs/ABI.md
// ("Columns as callers send them"). With rows = n and a column's offset o,
// buffers may be longer than needed (Arrow pads them and sizes them to their
// capacity) and only what the rows need is read: validity empty or at least
// ceil((o+n)/8) bytes; fixed width w at least (o+n)*w bytes, BOOLEAN at
// least ceil((o+n)/8); VARCHAR/BYTES at least o+n+1 offsets, non-decreasing
// from offsets[o] >= 0 to offsets[o+n] <= len(values). A VARCHAR or BYTES
// column of an empty batch may also have empty offsets. Every non-NULL
// VARCHAR row must be valid UTF-8. Errors name the column (1-based) and the
// problem.
func ValidateBatch(b *Batch, types []udf.Type) error {
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

// at names a column's offset in messages, when it has one.
func at(o uint64) string {
	if o == 0 {
		return ""
	}
	return fmt.Sprintf(" at offset %d", o)
}

func validateColumn(c *Column, want udf.Type, rows int) error {
	if c == nil {
		return fmt.Errorf("missing")
	}
	if !want.Valid() {
		return fmt.Errorf("the function declares invalid argument %s", want.String())
	}
	if c.Type != want {
		return fmt.Errorf("type %s, want %s", c.Type.String(), want.String())
	}
	// o+n fits easily in uint64: o is a u32 and n at most a u32.
	o, end := uint64(c.Offset), uint64(c.Offset)+uint64(rows)
	if n, w := uint64(len(c.Validity)), (end+7)/8; n != 0 && n < w {
		return fmt.Errorf("validity is %d bytes, want 0 or at least %d for %d rows%s", n, w, rows, at(o))
	}
	if !want.Varlen() {
		if len(c.Offsets) != 0 {
			return fmt.Errorf("%s column has %d bytes of offsets, want none", want.String(), len(c.Offsets))
		}
		w := (end + 7) / 8
		if fw := fixedWidth(want); fw > 0 {
			w = end * uint64(fw)
		}
		if n := uint64(len(c.Values)); n < w {
			return fmt.Errorf("values are %d bytes, want at least %d for %d %s rows%s", n, w, rows, want.String(), at(o))
		}
		return nil
	}
	if rows == 0 && len(c.Offsets) == 0 {
		return nil
	}
	if n, w := uint64(len(c.Offsets)), (end+1)*4; n < w {
		return fmt.Errorf("offsets are %d bytes, want at least %d for %d rows%s", n, w, rows, at(o))
	}
	offs := c.Offsets[o*4 : (end+1)*4]
	if err := checkOffsets(offs, rows, uint64(len(c.Values)), false); err != nil {
		return err
	}
	if want == udf.Varchar {
		if row, ok := checkUTF8(c.Validity, o, offs, c.Values, rows); !ok {
			return fmt.Errorf("row %d is not valid UTF-8 (VARCHAR is UTF-8; declare BYTES for other bytes)", row)
		}
	}
	return nil
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

// checkUTF8 reports whether every row of a VARCHAR column whose validity bit
// (at bit o+row of validity, nil or empty: all valid) is set is valid UTF-8,
// and if not the first row that is not. offs are the column's rows+1 checked
// offsets into values. NULL rows are skipped when it comes to checking rows
// one by one: their bytes are not values.
func checkUTF8(validity []byte, o uint64, offs, values []byte, rows int) (int, bool) {
	if rowsUTF8(offs, values, rows) {
		return 0, true
	}
	for i := range rows {
		if len(validity) > 0 && !bitSet(validity, int(o)+i) {
			continue
		}
		if !utf8.Valid(values[le.Uint32(offs[i*4:]):le.Uint32(offs[i*4+4:])]) {
			return i, false
		}
	}
	return 0, true
}

// rowsUTF8 reports whether all bytes of the rows (NULL or not) that the
// rows+1 checked offsets offs delimit in values are valid UTF-8, each row on
// its own. It costs one utf8.Valid over the rows' bytes and one byte test per
// row: a valid UTF-8 string cut only where runes start yields valid pieces.
func rowsUTF8(offs, values []byte, rows int) bool {
	first, last := le.Uint32(offs), le.Uint32(offs[rows*4:])
	data := values[first:last]
	if isASCII(data) { // the common case: every byte starts a rune
		return true
	}
	if !utf8.Valid(data) {
		return false
	}
	for i := 1; i < rows; i++ {
		if p := le.Uint32(offs[i*4:]) - first; int(p) < len(data) && !utf8.RuneStart(data[p]) {
			return false
		}
	}
	return true
}

// isASCII reports whether every byte of b is below 0x80, 8 bytes at a time.
func isASCII(b []byte) bool {
	var acc uint64
	for len(b) >= 8 {
		acc |= le.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		acc |= uint64(c)
	}
	return acc&0x8080808080808080 == 0
}

// varlenRange returns the first and last offset of the rows of a validated
// VARCHAR/BYTES column of a batch of rows rows (0, 0 when it has no
// offsets).
func varlenRange(c *Column, rows int) (first, last int) {
	if len(c.Offsets) < 4 {
		return 0, 0
	}
	o := int(c.Offset)
	return int(le.Uint32(c.Offsets[4*o:])), int(le.Uint32(c.Offsets[4*(o+rows):]))
}

// hasValidity reports whether AppendInput lays out a validity bitmap for c.
func hasValidity(c *Column, rows int) bool { return len(c.Validity) > 0 && rows > 0 }

// InputSize returns the number of bytes AppendInput appends for b, which
// must have passed ValidateBatch.
func InputSize(b *Batch) int {
	rows := int(b.Rows)
	size := inHeaderSize + inColSize*len(b.Columns)
	for _, c := range b.Columns {
		if hasValidity(c, rows) {
			size += align8(bitmapLen(rows))
		}
		if c.Type.Varlen() {
			first, last := varlenRange(c, rows)
			size += align8((rows+1)*4) + align8(last-first)
		} else {
			size += align8(valuesLen(c.Type, rows))
		}
	}
	return size
}

// AppendInput appends the batch v1 input region for b to dst and returns the
// extended slice. b must have passed ValidateBatch. The region has the exact
// layout guests expect whatever the caller's buffers were: offset 0, exact
// buffer sizes, VARCHAR/BYTES offsets starting at 0 and only the values the
// rows use. For a column at offset 0 (the common case) that is one copy per
// buffer, as for exact buffers; only a sliced column's bitmaps (at an offset
// that is not a multiple of 8) are shifted and its offsets rebased.
func AppendInput(dst []byte, b *Batch) []byte {
	rows := int(b.Rows)
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
		o := int(c.Offset)
		var voff int
		if hasValidity(c, rows) {
			voff = pos
			pos = putBits(r, pos, c.Validity, o, rows)
		}
		var ooff, valoff, vallen int
		switch {
		case c.Type.Varlen():
			ooff = pos
			first, last := varlenRange(c, rows)
			if len(c.Offsets) == 0 {
				pos = putAligned(r, pos, zeroOffset[:])
			} else {
				pos = putOffsets(r, pos, c.Offsets[4*o:4*(o+rows+1)], uint32(first))
			}
			valoff, vallen = pos, last-first
			pos = putAligned(r, pos, c.Values[first:last])
		case c.Type == udf.Boolean:
			valoff, vallen = pos, bitmapLen(rows)
			pos = putBits(r, pos, c.Values, o, rows)
		default:
			w := fixedWidth(c.Type)
			valoff, vallen = pos, w*rows
			pos = putAligned(r, pos, c.Values[w*o:w*(o+rows)])
		}
		le.PutUint32(d[0:], uint32(c.Type))
		le.PutUint32(d[4:], uint32(voff))
		le.PutUint32(d[8:], uint32(ooff))
		le.PutUint32(d[12:], uint32(valoff))
		le.PutUint32(d[16:], uint32(vallen))
		clear(d[20:32])
	}
	return dst
}

var zeroOffset [4]byte

// putAligned copies src to r[pos:], zeroes the padding up to the next
// multiple of 8 and returns that position.
func putAligned(r []byte, pos int, src []byte) int {
	end := pos + copy(r[pos:], src)
	next := align8(end)
	clear(r[end:next])
	return next
}

// putBits writes bits [o, o+rows) of the LSB-first bitmap src (which has at
// least that many) to r[pos:] as a bitmap starting at bit 0, clears the bits
// past rows and the padding, and returns the next 8-aligned position. At an
// offset that is a multiple of 8 this is a copy.
func putBits(r []byte, pos int, src []byte, o, rows int) int {
	n := bitmapLen(rows)
	out := r[pos : pos+n]
	src = src[o>>3:]
	if s := uint(o) & 7; s == 0 {
		copy(out, src[:n])
	} else {
		// Output byte j takes bits s..7 of src[j] and 0..s-1 of src[j+1];
		// src[j+1] exists whenever the rows need any of its bits.
		need := (int(s) + rows + 7) >> 3
		for j := range out {
			v := src[j] >> s
			if j+1 < need {
				v |= src[j+1] << (8 - s)
			}
			out[j] = v
		}
	}
	maskTail(out, rows)
	next := align8(pos + n)
	clear(r[pos+n : next])
	return next
}

// putOffsets writes rows+1 offsets, each less first (the offsets were
// checked to be non-decreasing from first), to r[pos:] and returns the next
// 8-aligned position. With first == 0, the common case, it is a copy.
func putOffsets(r []byte, pos int, offs []byte, first uint32) int {
	if first == 0 {
		return putAligned(r, pos, offs)
	}
	out := r[pos : pos+len(offs)]
	for i := 0; i < len(offs); i += 4 {
		le.PutUint32(out[i:], le.Uint32(offs[i:])-first)
	}
	next := align8(pos + len(offs))
	clear(r[pos+len(offs) : next])
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
	Type     udf.Type
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
	c.Type = udf.Type(le.Uint32(d))
	voff, ooff := le.Uint32(d[4:]), le.Uint32(d[8:])
	valoff, vallen := le.Uint32(d[12:]), le.Uint32(d[16:])
	if !c.Type.Valid() {
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
	if !c.Type.Varlen() {
		if ooff != 0 {
			return fmt.Errorf("%s column has offsets_off %d, want 0", c.Type.String(), ooff)
		}
		if uint64(vallen) != uint64(valuesLen(c.Type, rows)) {
			return fmt.Errorf("values_len %d does not match %d %s rows", vallen, rows, c.Type.String())
		}
		return nil
	}
	if ooff == 0 {
		return fmt.Errorf("%s column has no offsets", c.Type.String())
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
