package guest

import (
	"math"
	"slices"
	"unicode/utf8"
)

const (
	outputMagic   = 0x52464455 // "UDFR"
	outHeaderSize = 48
	errEntrySize  = 12
	maxMessageLen = 1024 // the host keeps at most this many bytes of a message
)

// Result is the output of one call: one value of type Type() per input row.
// Every row starts NULL. A setter panics if the value's type does not match
// the result type or the row is out of range.
type Result struct {
	typ      Type
	rows     int
	validity []byte   // 1 = valid
	values   []byte   // fixed-width values
	data     []byte   // VARCHAR/BYTES bytes, in the order they were set
	spans    []uint32 // VARCHAR/BYTES: start, end in data of each row
	errs     []rowErr
	msgs     []byte
}

type rowErr struct {
	row, off, n uint32
}

// Type returns the result's SQL type.
func (r *Result) Type() Type { return r.typ }

// Rows returns the number of rows to produce.
func (r *Result) Rows() int { return r.rows }

// zeroed returns b with length n and zeroed contents, reusing its memory.
func zeroed[T byte | uint32](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	b = b[:n]
	clear(b)
	return b
}

func (r *Result) reset(typ Type, rows int) {
	r.typ, r.rows = typ, rows
	r.validity = zeroed(r.validity, bitmapLen(rows))
	if typ.varlen() {
		r.values = r.values[:0]
		r.data = r.data[:0]
		r.spans = zeroed(r.spans, 2*rows)
	} else {
		r.values = zeroed(r.values, typ.valuesLen(rows))
		r.data = r.data[:0]
		r.spans = r.spans[:0]
	}
	r.errs = r.errs[:0]
	r.msgs = r.msgs[:0]
}

func (r *Result) want(t Type) {
	if r.typ != t {
		panic("guest: setting a " + t.String() + " in a " + r.typ.String() + " result")
	}
}

func (r *Result) setValid(row int) {
	if row < 0 || row >= r.rows {
		panic("guest: result row " + itoa(int64(row)) + " out of range")
	}
	r.validity[row>>3] |= 1 << (uint(row) & 7)
}

// SetNull makes row NULL.
func (r *Result) SetNull(row int) {
	if row < 0 || row >= r.rows {
		panic("guest: result row " + itoa(int64(row)) + " out of range")
	}
	r.validity[row>>3] &^= 1 << (uint(row) & 7)
	if r.typ.varlen() {
		r.spans[2*row], r.spans[2*row+1] = 0, 0
	}
}

// SetInt32 sets row of an INT result.
func (r *Result) SetInt32(row int, v int32) {
	r.want(Int)
	r.setValid(row)
	put32(r.values, 4*row, uint32(v))
}

// SetInt64 sets row of a BIGINT result.
func (r *Result) SetInt64(row int, v int64) {
	r.want(BigInt)
	r.setValid(row)
	put64(r.values, 8*row, uint64(v))
}

// SetFloat32 sets row of a FLOAT result.
func (r *Result) SetFloat32(row int, v float32) {
	r.want(Float)
	r.setValid(row)
	put32(r.values, 4*row, math.Float32bits(v))
}

// SetFloat64 sets row of a DOUBLE result.
func (r *Result) SetFloat64(row int, v float64) {
	r.want(Double)
	r.setValid(row)
	put64(r.values, 8*row, math.Float64bits(v))
}

// SetBool sets row of a BOOLEAN result.
func (r *Result) SetBool(row int, v bool) {
	r.want(Boolean)
	r.setValid(row)
	if v {
		r.values[row>>3] |= 1 << (uint(row) & 7)
	} else {
		r.values[row>>3] &^= 1 << (uint(row) & 7)
	}
}

// SetString sets row of a VARCHAR or BYTES result; s is copied.
func (r *Result) SetString(row int, s string) {
	r.setVar(row)
	start := len(r.data)
	r.data = append(r.data, s...)
	r.spans[2*row], r.spans[2*row+1] = uint32(start), uint32(len(r.data))
}

// SetBytes sets row of a VARCHAR or BYTES result; b is copied.
func (r *Result) SetBytes(row int, b []byte) {
	r.setVar(row)
	start := len(r.data)
	r.data = append(r.data, b...)
	r.spans[2*row], r.spans[2*row+1] = uint32(start), uint32(len(r.data))
}

func (r *Result) setVar(row int) {
	if !r.typ.varlen() {
		panic("guest: setting a string in a " + r.typ.String() + " result")
	}
	r.setValid(row)
}

// SetError makes row fail with err's message (a nil err reads "unknown
// error"): the caller gets an error for the row, not NULL. The error stands
// even if a value is set for the row afterwards; the last SetError of a row
// wins.
func (r *Result) SetError(row int, err error) {
	msg := "unknown error"
	if err != nil {
		msg = err.Error()
	}
	r.SetNull(row)
	msg = truncMsg(msg)
	r.errs = append(r.errs, rowErr{row: uint32(row), off: uint32(len(r.msgs)), n: uint32(len(msg))})
	r.msgs = append(r.msgs, msg...)
}

// failAll replaces everything set so far with err as the error of every row.
func (r *Result) failAll(err error) {
	msg := truncMsg(err.Error())
	r.reset(r.typ, r.rows)
	r.msgs = append(r.msgs, msg...)
	for row := range r.rows {
		r.errs = append(r.errs, rowErr{row: uint32(row), n: uint32(len(msg))})
	}
}

// truncMsg cuts msg to maxMessageLen bytes on a rune boundary.
func truncMsg(msg string) string {
	if len(msg) <= maxMessageLen {
		return msg
	}
	cut := maxMessageLen
	for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(msg[cut]); i++ {
		cut--
	}
	return msg[:cut]
}

// outBuf holds the output region returned to the host; like inBuf it is
// referenced from a package variable and reused across calls.
var outBuf []uint64

// finish lays the result out as an output region in outBuf and returns it.
func (r *Result) finish() []byte {
	// Sort errors by row, keeping the last one of a row, and make their rows NULL.
	if !slices.IsSortedFunc(r.errs, cmpErr) {
		slices.SortStableFunc(r.errs, cmpErr)
	}
	errs := r.errs[:0]
	for i, e := range r.errs {
		if i+1 < len(r.errs) && r.errs[i+1].row == e.row {
			continue
		}
		errs = append(errs, e)
		r.SetNull(int(e.row))
	}
	r.errs = errs
	if t := r.rows & 7; t != 0 {
		r.validity[len(r.validity)-1] &= byte(1)<<t - 1
		if r.typ == Boolean {
			r.values[len(r.values)-1] &= byte(1)<<t - 1
		}
	}

	vlen := len(r.validity)
	if allValid(r.validity, r.rows) {
		vlen = 0
	}
	olen, dlen, contiguous := 0, 0, true
	if r.typ.varlen() {
		olen = (r.rows + 1) * 4
		cursor := uint32(0)
		for row := range r.rows {
			s, e := r.spans[2*row], r.spans[2*row+1]
			if e > s {
				contiguous = contiguous && s == cursor
				cursor = e
				dlen += int(e - s)
			}
		}
	} else {
		dlen = len(r.values)
	}
	msgBytes := 0
	for _, e := range r.errs {
		msgBytes += int(e.n)
	}
	size := outHeaderSize + align8(vlen) + align8(olen) + align8(dlen) + align8(len(r.errs)*errEntrySize) + msgBytes
	if words := size/8 + 1; words > cap(outBuf) {
		outBuf = nil
		outBuf = make([]uint64, words)
	}
	outBuf = outBuf[:cap(outBuf)]
	out := asBytes(outBuf)[:size]
	clear(out) // padding and reserved fields must be 0

	pos := outHeaderSize
	voff := 0
	if vlen > 0 {
		voff = pos
		copy(out[pos:], r.validity)
		pos = align8(pos + vlen)
	}
	ooff := 0
	valoff := 0
	if r.typ.varlen() {
		ooff = pos
		valoff = align8(pos + olen)
		vals := out[valoff : valoff+dlen]
		if contiguous {
			copy(vals, r.data[:dlen])
		}
		end := 0
		for row := range r.rows {
			s, e := r.spans[2*row], r.spans[2*row+1]
			if e > s && !contiguous {
				copy(vals[end:], r.data[s:e])
			}
			if e > s {
				end += int(e - s)
			}
			put32(out, ooff+4*(row+1), uint32(end))
		}
	} else {
		valoff = pos
		copy(out[valoff:], r.values)
	}
	eoff := align8(valoff + dlen)
	mpos := align8(eoff + len(r.errs)*errEntrySize)
	for i, e := range r.errs {
		ent := eoff + i*errEntrySize
		put32(out, ent, e.row)
		put32(out, ent+4, uint32(mpos))
		put32(out, ent+8, e.n)
		mpos += copy(out[mpos:], r.msgs[e.off:e.off+e.n])
	}

	put32(out, 0, outputMagic)
	put32(out, 4, abiVersion)
	put32(out, 8, uint32(r.rows))
	put32(out, 12, uint32(r.typ))
	put32(out, 16, uint32(voff))
	put32(out, 20, uint32(ooff))
	put32(out, 24, uint32(valoff))
	put32(out, 28, uint32(dlen))
	put32(out, 32, uint32(len(r.errs)))
	put32(out, 36, uint32(eoff))
	return out
}

func cmpErr(a, b rowErr) int {
	switch {
	case a.row < b.row:
		return -1
	case a.row > b.row:
		return 1
	}
	return 0
}

// allValid reports whether the first rows bits of v are all 1.
func allValid(v []byte, rows int) bool {
	full := rows >> 3
	for _, x := range v[:full] {
		if x != 0xff {
			return false
		}
	}
	if t := rows & 7; t != 0 {
		m := byte(1)<<t - 1
		return v[full]&m == m
	}
	return true
}
