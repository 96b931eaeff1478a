package wasmscan

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// reader is a bounds-checked cursor over a byte slice.
type reader struct {
	buf []byte
	pos int
}

func (r *reader) left() int { return len(r.buf) - r.pos }

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.buf) {
		return 0, errTruncated
	}
	b := r.buf[r.pos]
	r.pos++
	return b, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > r.left() {
		return nil, errTruncated
	}
	b := r.buf[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

// u32 reads an unsigned LEB128 value of at most 5 bytes that fits in 32 bits.
func (r *reader) u32() (uint32, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == 4 && b&0xf0 != 0 {
			return 0, errors.New("LEB128 value overflows 32 bits")
		}
		v |= uint32(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 value longer than 5 bytes")
}

// u32s skips n unsigned 32-bit LEB128 values.
func (r *reader) u32s(n int) error {
	for range n {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

// skipLEB skips a LEB128 value of at most maxBytes bytes (signed or not).
func (r *reader) skipLEB(maxBytes int) error {
	for i := 0; i < maxBytes; i++ {
		b, err := r.byte()
		if err != nil {
			return err
		}
		if b&0x80 == 0 {
			return nil
		}
	}
	return fmt.Errorf("LEB128 value longer than %d bytes", maxBytes)
}

// count reads a vector length and checks it against limit and against the
// bytes left (every element takes at least one byte).
func (r *reader) count(limit uint32, what string) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, fmt.Errorf("number of %s: %w", what, err)
	}
	if n > limit {
		return 0, fmt.Errorf("%d %s, more than %d", n, what, limit)
	}
	if int64(n) > int64(r.left()) {
		return 0, fmt.Errorf("%d %s cannot fit in the %d bytes left", n, what, r.left())
	}
	return n, nil
}

// vector reads a vector of at most limit entries (see count), calling
// entry for each in turn; an entry's error ends it, as it is.
func (r *reader) vector(limit uint32, what string, entry func(i uint32) error) error {
	n, err := r.count(limit, what)
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if err := entry(i); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(int(n))
	if err != nil {
		return "", fmt.Errorf("length %d runs past the end", n)
	}
	if !utf8.Valid(b) {
		return "", errors.New("name is not valid UTF-8")
	}
	return string(b), nil
}

// valType reads a value type: one byte, or a reference-type prefix (0x63,
// 0x64) and a signed 33-bit heap type.
func (r *reader) valType() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	if b == 0x63 || b == 0x64 {
		return r.skipLEB(5)
	}
	return nil
}

// funcType reads a function type; with collect, it also returns it
// (without, it allocates nothing: the scan reads every type once).
func (r *reader) funcType(collect bool) (sig FuncType, err error) {
	b, err := r.byte()
	if err != nil {
		return FuncType{}, err
	}
	if b != 0x60 {
		return FuncType{}, fmt.Errorf("function type starts with 0x%02x, want 0x60", b)
	}
	if sig.Params, err = r.valTypes(maxParams, "parameters", collect); err != nil {
		return FuncType{}, err
	}
	if sig.Results, err = r.valTypes(maxResults, "results", collect); err != nil {
		return FuncType{}, err
	}
	return sig, nil
}

// valTypes reads a vector of value types, returning each one's first byte
// if collect.
func (r *reader) valTypes(limit uint32, what string, collect bool) ([]byte, error) {
	n, err := r.count(limit, what)
	if err != nil {
		return nil, err
	}
	var out []byte
	for i := uint32(0); i < n; i++ {
		first := r.pos
		if err := r.valType(); err != nil {
			return nil, err
		}
		if collect {
			out = append(out, r.buf[first])
		}
	}
	return out, nil
}

// limits reads memory or table limits: flag 0-3, min and optional max.
func (r *reader) limits() (l tableLimits, err error) {
	flag, err := r.byte()
	if err != nil {
		return l, err
	}
	if flag > 3 {
		return l, fmt.Errorf("limits flag 0x%02x", flag)
	}
	if l.min, err = r.u32(); err != nil {
		return l, err
	}
	if l.hasMax = flag&1 != 0; l.hasMax {
		l.max, err = r.u32()
	}
	return l, err
}
