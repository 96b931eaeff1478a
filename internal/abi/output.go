package abi

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/udfhost/udfhost/internal/udf"
)

// outView is a checked view of an output region.
type outView struct {
	validity []byte // nil: every row valid
	offsets  []byte // VARCHAR/BYTES; nil only when rows == 0
	values   []byte
	first    uint32 // first and last offset (VARCHAR/BYTES)
	last     uint32
	errs     []byte // nerrors entries of errEntrySize bytes
}

func badOutput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadOutput}, args...)...)
}

// parseOutput checks every field, offset and length of the output region r
// against rows and typ, and the offsets and error entries it points to.
func parseOutput(r []byte, rows int, typ udf.Type) (v outView, err error) {
	if !typ.Valid() {
		return v, badOutput("invalid result %s", typ.String())
	}
	if len(r) < outHeaderSize {
		return v, badOutput("region is %d bytes, shorter than the %d-byte header", len(r), outHeaderSize)
	}
	if m := le.Uint32(r); m != OutputMagic {
		return v, badOutput("magic %#x, want %#x", m, OutputMagic)
	}
	if ver := le.Uint32(r[4:]); ver != Version {
		return v, badOutput("version %d, want %d", ver, Version)
	}
	if got := le.Uint32(r[8:]); uint64(got) != uint64(rows) {
		return v, badOutput("%d rows, want %d", got, rows)
	}
	if got := udf.Type(le.Uint32(r[12:])); got != typ {
		return v, badOutput("result type %s, want %s", got.String(), typ.String())
	}
	if le.Uint32(r[40:])|le.Uint32(r[44:]) != 0 {
		return v, badOutput("reserved header fields are not 0")
	}
	voff, ooff := le.Uint32(r[16:]), le.Uint32(r[20:])
	valoff, vallen := le.Uint32(r[24:]), le.Uint32(r[28:])
	nerr, eoff := le.Uint32(r[32:]), le.Uint32(r[36:])
	if voff != 0 {
		if v.validity, err = outputBuf(r, "validity", voff, uint64(bitmapLen(rows))); err != nil {
			return v, err
		}
	}
	if v.values, err = outputBuf(r, "values", valoff, uint64(vallen)); err != nil {
		return v, err
	}
	if typ.Varlen() {
		switch {
		case ooff != 0:
			if v.offsets, err = outputBuf(r, "offsets", ooff, (uint64(rows)+1)*4); err != nil {
				return v, err
			}
			if err := checkOffsets(v.offsets, rows, uint64(vallen), false); err != nil {
				return v, badOutput("%v", err)
			}
			v.first, v.last = le.Uint32(v.offsets), le.Uint32(v.offsets[rows*4:])
		case rows != 0:
			return v, badOutput("%s result has no offsets", typ.String())
		}
	} else {
		if ooff != 0 {
			return v, badOutput("%s result has offsets_off %d, want 0", typ.String(), ooff)
		}
		if want := valuesLen(typ, rows); uint64(vallen) != uint64(want) {
			return v, badOutput("values_len %d, want %d for %d %s rows", vallen, want, rows, typ.String())
		}
	}
	if nerr == 0 {
		return v, nil
	}
	if v.errs, err = outputBuf(r, "error table", eoff, uint64(nerr)*errEntrySize); err != nil {
		return v, err
	}
	for i := 0; i < len(v.errs); i += errEntrySize {
		e := v.errs[i:]
		if row := le.Uint32(e); uint64(row) >= uint64(rows) {
			return v, badOutput("error %d names row %d of %d", i/errEntrySize, row, rows)
		}
		if _, err := outputBuf(r, "error message", le.Uint32(e[4:]), uint64(le.Uint32(e[8:]))); err != nil {
			return v, err
		}
	}
	return v, nil
}

// outputBuf returns r[off:off+n] after checking that it lies inside r and,
// unless empty, after the header.
func outputBuf(r []byte, name string, off uint32, n uint64) ([]byte, error) {
	if end, carry := bits.Add64(uint64(off), n, 0); carry != 0 || end > uint64(len(r)) {
		return nil, badOutput("%s [%d, +%d) is outside the %d-byte region", name, off, n, len(r))
	}
	if n > 0 && off < outHeaderSize {
		return nil, badOutput("%s at %d overlaps the header", name, off)
	}
	end := uint64(off) + n
	return r[off:end:end], nil
}

// errEntry reads error table entry i.
func errEntry(errs []byte, i int) (row, off, n uint32) {
	e := errs[i*errEntrySize:]
	return le.Uint32(e), le.Uint32(e[4:]), le.Uint32(e[8:])
}

// truncMsg cuts a message to MaxMessageLen bytes, backing off to a rune
// boundary when the cut would split a UTF-8 sequence.
func truncMsg[S ~string | ~[]byte](m S) S {
	if len(m) <= MaxMessageLen {
		return m
	}
	cut := MaxMessageLen
	for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(m[cut]); i++ {
		cut--
	}
	return m[:cut]
}

// errorOrder returns nil if the error rows are strictly increasing, else the
// entry indices sorted by row; a row listed twice is an error.
func errorOrder(errs []byte) ([]int32, error) {
	n := len(errs) / errEntrySize
	prev := int64(-1)
	sorted := true
	for i := range n {
		row, _, _ := errEntry(errs, i)
		if int64(row) <= prev {
			sorted = false
			break
		}
		prev = int64(row)
	}
	if sorted {
		return nil, nil
	}
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	rowOf := func(i int32) uint32 { r, _, _ := errEntry(errs, int(i)); return r }
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(rowOf(a), rowOf(b)) })
	for i := 1; i < n; i++ {
		if r := rowOf(order[i]); r == rowOf(order[i-1]) {
			return nil, badOutput("row %d has more than one error", r)
		}
	}
	return order, nil
}

// putOutputHeader writes a compact output region's header.
func putOutputHeader(r []byte, rows int, typ udf.Type, voff, ooff, valoff, vallen, nerr, eoff int) {
	le.PutUint32(r[0:], OutputMagic)
	le.PutUint32(r[4:], Version)
	le.PutUint32(r[8:], uint32(rows))
	le.PutUint32(r[12:], uint32(typ))
	le.PutUint32(r[16:], uint32(voff))
	le.PutUint32(r[20:], uint32(ooff))
	le.PutUint32(r[24:], uint32(valoff))
	le.PutUint32(r[28:], uint32(vallen))
	le.PutUint32(r[32:], uint32(nerr))
	le.PutUint32(r[36:], uint32(eoff))
	clear(r[40:48])
}

// CopyOutput checks the output region [ptr, ptr+n) that a guest left in its
// linear memory mem (untrusted) against rows and the result type typ, and
// appends a compact copy to dst: offsets relative to its own start, buffers
// 8-aligned, VARCHAR/BYTES offsets starting at 0, error rows sorted, NULL in
// the validity bitmap and messages cut to MaxMessageLen bytes. Inconsistent
// regions yield an error wrapping ErrBadOutput (dst is then returned
// unchanged); ptr == 0 && n == 0 yields ErrBatchFailed.
func CopyOutput(dst, mem []byte, ptr, n uint32, rows int, typ udf.Type) ([]byte, error) {
	if ptr == 0 && n == 0 {
		return dst, ErrBatchFailed
	}
	if end := uint64(ptr) + uint64(n); end > uint64(len(mem)) {
		return dst, badOutput("region [%d, %d) is outside the %d-byte memory", ptr, end, len(mem))
	}
	v, err := parseOutput(mem[ptr:uint64(ptr)+uint64(n)], rows, typ)
	if err != nil {
		return dst, err
	}
	order, err := errorOrder(v.errs)
	if err != nil {
		return dst, err
	}
	nerr := len(v.errs) / errEntrySize
	msgBytes := 0
	for i := range nerr {
		_, off, l := errEntry(v.errs, i)
		msgBytes += len(truncMsg(mem[uint64(ptr)+uint64(off):][:l]))
	}
	varlen := typ.Varlen()
	vlen := 0
	if v.validity != nil || nerr > 0 {
		vlen = bitmapLen(rows)
	}
	olen, values := 0, v.values
	if varlen {
		olen = (rows + 1) * 4
		values = v.values[v.first:v.last]
	}
	size := outHeaderSize + align8(vlen) + align8(olen) + align8(len(values)) + align8(nerr*errEntrySize) + msgBytes
	if uint64(size) > math.MaxUint32 {
		return dst, badOutput("compact region would be %d bytes", size)
	}

	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	r := dst[start:]
	pos := outHeaderSize
	voff := 0
	if vlen > 0 {
		voff = pos
		vb := r[pos : pos+vlen]
		if v.validity != nil {
			copy(vb, v.validity)
		} else {
			for i := range vb {
				vb[i] = 0xff
			}
		}
		for i := range nerr {
			row, _, _ := errEntry(v.errs, i)
			vb[row>>3] &^= 1 << (row & 7)
		}
		maskTail(vb, rows)
		pos = align8(pos + vlen)
		clear(r[voff+vlen : pos])
	}
	ooff := 0
	if varlen {
		ooff = pos
		ob := r[pos : pos+olen]
		switch {
		case v.offsets == nil:
			clear(ob)
		case v.first == 0:
			copy(ob, v.offsets)
		default:
			for i := 0; i < olen; i += 4 {
				le.PutUint32(ob[i:], le.Uint32(v.offsets[i:])-v.first)
			}
		}
		pos = align8(pos + olen)
		clear(r[ooff+olen : pos])
	}
	valoff := pos
	pos = putAligned(r, pos, values)
	if typ == udf.Boolean {
		maskTail(r[valoff:valoff+len(values)], rows)
	}
	eoff := pos
	mpos := align8(eoff + nerr*errEntrySize)
	clear(r[eoff+nerr*errEntrySize : mpos])
	for i := range nerr {
		j := i
		if order != nil {
			j = int(order[i])
		}
		row, off, l := errEntry(v.errs, j)
		m := truncMsg(mem[uint64(ptr)+uint64(off):][:l])
		e := r[eoff+i*errEntrySize:]
		le.PutUint32(e, row)
		le.PutUint32(e[4:], uint32(mpos))
		le.PutUint32(e[8:], uint32(len(m)))
		mpos += copy(r[mpos:], m)
	}
	putOutputHeader(r, rows, typ, voff, ooff, valoff, len(values), nerr, eoff)
	return dst, nil
}

// DecodeOutput turns a compact output region (from CopyOutput or
// OutputBuilder, received from the worker) into a proto column whose buffers
// alias buf, and its row errors. It checks the region again, and that error
// rows are strictly increasing and NULL; errors wrap ErrBadOutput. Invalid
// UTF-8 in messages is replaced by U+FFFD (proto strings must be UTF-8).
//
// The column is a result as docs/ABI.md promises: offset 0, exact buffers,
// rows+1 offsets from 0 for VARCHAR/BYTES (one for 0 rows). A VARCHAR row
// that is not valid UTF-8 becomes NULL with the row error "row N: result is
// not valid UTF-8" (the column is then a copy); BYTES rows are not checked.
func DecodeOutput(buf []byte, rows int, typ udf.Type) (*Column, []*RowError, error) {
	v, err := parseOutput(buf, rows, typ)
	if err != nil {
		return nil, nil, err
	}
	col := &Column{Type: typ, Validity: v.validity, Offsets: v.offsets, Values: v.values}
	if typ.Varlen() {
		if v.first != 0 {
			return nil, nil, badOutput("first offset is %d, want 0", v.first)
		}
		col.Values = v.values[:v.last:v.last]
		if v.offsets == nil { // rows == 0: Arrow still wants its one offset
			col.Offsets = make([]byte, 4)
		}
	}
	nerr := len(v.errs) / errEntrySize
	if nerr == 0 {
		return checkResultUTF8(col, rows, nil)
	}
	if v.validity == nil {
		return nil, nil, badOutput("%d row errors but no validity bitmap", nerr)
	}
	prev := int64(-1)
	for i := range nerr {
		row, _, _ := errEntry(v.errs, i)
		if int64(row) <= prev {
			return nil, nil, badOutput("error rows not strictly increasing (%d after %d)", row, prev)
		}
		if bitSet(v.validity, int(row)) {
			return nil, nil, badOutput("error row %d is not NULL", row)
		}
		prev = int64(row)
	}
	structs := make([]RowError, nerr)
	errs := make([]*RowError, nerr)
	for i := range nerr {
		row, off, l := errEntry(v.errs, i)
		msg := string(truncMsg(buf[off:][:l]))
		if !utf8.ValidString(msg) {
			msg = truncMsg(strings.ToValidUTF8(msg, "\uFFFD"))
		}
		structs[i].Row = row
		structs[i].Message = msg
		errs[i] = &structs[i]
	}
	return checkResultUTF8(col, rows, errs)
}

// EmptyResult returns the result column of a batch of 0 rows of type typ:
// no buffers, except the one offset (0) that a VARCHAR or BYTES array of
// length 0 carries in Arrow.
func EmptyResult(typ udf.Type) *Column {
	col := &Column{Type: typ}
	if typ.Varlen() {
		col.Offsets = make([]byte, 4)
	}
	return col
}

// checkResultUTF8 returns col and errs unchanged unless col is a VARCHAR
// result with bytes that are not valid UTF-8 (VARCHAR is UTF-8 in and out).
// Then it returns a copy in which each such non-NULL row is NULL with a row
// error naming it, added to errs in row order, and NULL rows hold no bytes,
// so that the result is valid Arrow. The common case costs a utf8.Valid
// over the values and a byte test per row.
func checkResultUTF8(col *Column, rows int, errs []*RowError) (*Column, []*RowError, error) {
	if col.Type != udf.Varchar || rows == 0 || rowsUTF8(col.Offsets, col.Values, rows) {
		return col, errs, nil
	}
	validity := make([]byte, bitmapLen(rows))
	if len(col.Validity) > 0 {
		copy(validity, col.Validity)
	} else {
		for i := range validity {
			validity[i] = 0xff
		}
		maskTail(validity, rows)
	}
	offs := make([]byte, 4*(rows+1))
	values := make([]byte, 0, len(col.Values))
	out := make([]*RowError, 0, len(errs)+1)
	next := 0 // errs[next:] are after the rows seen so far
	for i := range rows {
		if bitSet(validity, i) {
			b := col.Values[le.Uint32(col.Offsets[4*i:]):le.Uint32(col.Offsets[4*i+4:])]
			if utf8.Valid(b) {
				values = append(values, b...)
			} else {
				validity[i>>3] &^= 1 << (uint(i) & 7)
				for next < len(errs) && int(errs[next].Row) < i {
					out = append(out, errs[next])
					next++
				}
				out = append(out, &RowError{Row: uint32(i), Message: "row " + strconv.Itoa(i) + ": result is not valid UTF-8"})
			}
		}
		le.PutUint32(offs[4*i+4:], uint32(len(values)))
	}
	out = append(out, errs[next:]...)
	if len(out) == 0 {
		out = nil
	}
	if allValid(validity, rows) {
		validity = nil
	}
	return &Column{Type: col.Type, Validity: validity, Offsets: offs, Values: values}, out, nil
}

// OutputBuilder builds a compact output region row by row, for fixed-width
// result types (the direct ABI has no VARCHAR or BYTES). Rows start NULL.
// Reuse one builder across batches: Reset keeps its memory.
type OutputBuilder struct {
	typ      udf.Type
	rows     int
	validity []byte
	values   []byte
	errs     []builderErr
	msgs     []byte
}

type builderErr struct {
	row, off, n uint32
}

// resize returns b with length n and zeroed contents, reusing its memory.
func resize(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	b = b[:n]
	clear(b)
	return b
}

// Reset prepares b for rows rows of result type typ, every row NULL. It
// panics if typ is not a fixed-width type (INT, BIGINT, FLOAT, DOUBLE,
// BOOLEAN).
func (b *OutputBuilder) Reset(typ udf.Type, rows int) {
	if fixedWidth(typ) < 0 {
		panic("abi: OutputBuilder cannot build " + typ.String() + " results")
	}
	b.typ, b.rows = typ, rows
	b.validity = resize(b.validity, bitmapLen(rows))
	b.values = resize(b.values, valuesLen(typ, rows))
	b.errs = b.errs[:0]
	b.msgs = b.msgs[:0]
}

func (b *OutputBuilder) check(t udf.Type) {
	if b.typ != t {
		b.typeMismatch(t)
	}
}

func (b *OutputBuilder) typeMismatch(t udf.Type) {
	panic("abi: setting a " + t.String() + " in a " + b.typ.String() + " result")
}

func (b *OutputBuilder) setValid(i int) { b.validity[i>>3] |= 1 << (uint(i) & 7) }

// SetNull makes row i NULL.
func (b *OutputBuilder) SetNull(i int) { b.validity[i>>3] &^= 1 << (uint(i) & 7) }

// SetInt32 sets row i of an INT result.
func (b *OutputBuilder) SetInt32(i int, v int32) {
	b.check(udf.Int)
	le.PutUint32(b.values[4*i:], uint32(v))
	b.setValid(i)
}

// SetInt64 sets row i of a BIGINT result.
func (b *OutputBuilder) SetInt64(i int, v int64) {
	b.check(udf.BigInt)
	le.PutUint64(b.values[8*i:], uint64(v))
	b.setValid(i)
}

// SetFloat32 sets row i of a FLOAT result.
func (b *OutputBuilder) SetFloat32(i int, v float32) {
	b.check(udf.Float)
	le.PutUint32(b.values[4*i:], math.Float32bits(v))
	b.setValid(i)
}

// SetFloat64 sets row i of a DOUBLE result.
func (b *OutputBuilder) SetFloat64(i int, v float64) {
	b.check(udf.Double)
	le.PutUint64(b.values[8*i:], math.Float64bits(v))
	b.setValid(i)
}

// SetBool sets row i of a BOOLEAN result.
func (b *OutputBuilder) SetBool(i int, v bool) {
	b.check(udf.Boolean)
	if v {
		b.values[i>>3] |= 1 << (uint(i) & 7)
	} else {
		b.values[i>>3] &^= 1 << (uint(i) & 7)
	}
	b.setValid(i)
}

// SetError makes row i NULL and reports msg (cut to MaxMessageLen bytes) as
// its error. The error stands even if a value is set for the row later; if
// SetError is called twice for a row, the last message wins.
func (b *OutputBuilder) SetError(i int, msg string) {
	if i < 0 || i >= b.rows {
		panic("abi: SetError row out of range")
	}
	b.SetNull(i)
	m := truncMsg(msg)
	b.errs = append(b.errs, builderErr{row: uint32(i), off: uint32(len(b.msgs)), n: uint32(len(m))})
	b.msgs = append(b.msgs, m...)
}

// normalizeErrors sorts the errors by row, keeping the last one of a row.
func (b *OutputBuilder) normalizeErrors() {
	sorted := true
	for i := 1; i < len(b.errs); i++ {
		if b.errs[i].row <= b.errs[i-1].row {
			sorted = false
			break
		}
	}
	if sorted {
		return
	}
	slices.SortStableFunc(b.errs, func(x, y builderErr) int { return cmp.Compare(x.row, y.row) })
	out := b.errs[:0]
	for i, e := range b.errs {
		if i+1 < len(b.errs) && b.errs[i+1].row == e.row {
			continue
		}
		out = append(out, e)
	}
	b.errs = out
}

// AppendTo appends the compact output region for the rows set so far to dst
// and returns the extended slice.
func (b *OutputBuilder) AppendTo(dst []byte) []byte {
	b.normalizeErrors()
	for _, e := range b.errs {
		b.SetNull(int(e.row))
	}
	maskTail(b.validity, b.rows)
	if b.typ == udf.Boolean {
		maskTail(b.values, b.rows)
	}
	vlen := len(b.validity)
	if allValid(b.validity, b.rows) {
		vlen = 0
	}
	nerr := len(b.errs)
	msgBytes := 0
	for _, e := range b.errs {
		msgBytes += int(e.n)
	}
	size := outHeaderSize + align8(vlen) + align8(len(b.values)) + align8(nerr*errEntrySize) + msgBytes
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	r := dst[start:]
	pos := outHeaderSize
	voff := 0
	if vlen > 0 {
		voff = pos
		pos = putAligned(r, pos, b.validity)
	}
	valoff := pos
	pos = putAligned(r, pos, b.values)
	eoff := pos
	mpos := align8(eoff + nerr*errEntrySize)
	clear(r[eoff+nerr*errEntrySize : mpos])
	for i, e := range b.errs {
		ent := r[eoff+i*errEntrySize:]
		le.PutUint32(ent, e.row)
		le.PutUint32(ent[4:], uint32(mpos))
		le.PutUint32(ent[8:], e.n)
		mpos += copy(r[mpos:], b.msgs[e.off:e.off+e.n])
	}
	putOutputHeader(r, b.rows, b.typ, voff, 0, valoff, len(b.values), nerr, eoff)
	return dst
}

// allValid reports whether the first rows bits of bitmap v are all 1.
func allValid(v []byte, rows int) bool {
	full := rows >> 3
	for _, x := range v[:full] {
		if x != 0xff {
			return false
		}
	}
	if r := rows & 7; r != 0 {
		m := byte(1)<<r - 1
		return v[full]&m == m
	}
	return true
}
