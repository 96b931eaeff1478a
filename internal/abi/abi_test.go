package abi

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/udfhost/udfhost/internal/udf"
)

var rowCounts = []int{0, 1, 7, 8, 9, 100}

func TestInputRoundTrip(t *testing.T) {
	for _, rows := range rowCounts {
		for _, nulls := range []bool{false, true} {
			// One batch holding every type, twice, so that buffers of several
			// columns follow each other.
			b := &Batch{Rows: uint32(rows)}
			var types []udf.Type
			for range 2 {
				for _, typ := range allTypes {
					b.Columns = append(b.Columns, sampleColumn(typ, rows, nulls))
					types = append(types, typ)
				}
			}
			if err := ValidateBatch(b, types); err != nil {
				t.Fatalf("rows=%d: ValidateBatch: %v", rows, err)
			}
			prefix := []byte("prefix!") // AppendInput appends; regions start wherever
			buf := AppendInput(prefix, b)
			if string(buf[:len(prefix)]) != string(prefix) {
				t.Fatal("AppendInput clobbered dst")
			}
			region := buf[len(prefix):]
			if len(region) != InputSize(b) {
				t.Fatalf("rows=%d: AppendInput wrote %d bytes, InputSize says %d", rows, len(region), InputSize(b))
			}
			// Re-align like a host copying into guest memory would.
			region = append(make([]byte, 0, len(region)), region...)
			in, err := ParseInput(region)
			if err != nil {
				t.Fatalf("rows=%d nulls=%v: ParseInput: %v", rows, nulls, err)
			}
			if in.Rows != rows || len(in.Cols) != len(types) {
				t.Fatalf("parsed %d rows %d cols, want %d %d", in.Rows, len(in.Cols), rows, len(types))
			}
			for i := range in.Cols {
				c := &in.Cols[i]
				if c.Type != types[i] {
					t.Fatalf("col %d type %v, want %v", i, c.Type, types[i])
				}
				if !nulls && c.Validity != nil {
					t.Errorf("col %d has a validity bitmap without NULLs", i)
				}
				checkColumn(t, c.Type.String(), c, protoCol(b.Columns[i]), rows)
				if (c.Type == udf.Varchar || c.Type == udf.Bytes) && rows > 0 {
					if v := colValue(c, 0); v != "" && c.Type == udf.Varchar {
						t.Errorf("row 0 of VARCHAR = %q, want empty string", v)
					}
				}
			}
		}
	}
}

func TestAppendInputEmptyOffsets(t *testing.T) {
	// Arrow allows an empty offsets buffer for an empty VARCHAR column.
	b := &Batch{Columns: []*Column{{Type: udf.Varchar}}}
	if err := ValidateBatch(b, []udf.Type{udf.Varchar}); err != nil {
		t.Fatal(err)
	}
	in, err := ParseInput(AppendInput(nil, b))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Cols[0].Offsets) != 4 {
		t.Fatalf("offsets %v, want one 0 offset", in.Cols[0].Offsets)
	}
}

func TestAppendInputTrimsValues(t *testing.T) {
	c := sampleColumn(udf.Varchar, 5, true)
	c.Values = append(c.Values, "unused tail"...)
	b := &Batch{Rows: 5, Columns: []*Column{c}}
	if err := ValidateBatch(b, []udf.Type{udf.Varchar}); err != nil {
		t.Fatal(err)
	}
	in, err := ParseInput(AppendInput(nil, b))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(in.Cols[0].Values), "unused") {
		t.Error("values past the last offset were copied")
	}
	checkColumn(t, "varchar", &in.Cols[0], protoCol(c), 5)
}

func TestValidateBatchErrors(t *testing.T) {
	le := binary.LittleEndian
	good := func(typ udf.Type) *Column { return sampleColumn(typ, 9, true) }
	offs := func(o ...uint32) []byte {
		var b []byte
		for _, x := range o {
			b = le.AppendUint32(b, x)
		}
		return b
	}
	tests := []struct {
		name  string
		rows  uint32
		cols  []*Column
		types []udf.Type
		want  string
	}{
		{"column count", 9, []*Column{good(udf.Int)}, []udf.Type{udf.Int, udf.Int}, "1 columns, the function takes 2"},
		{"nil column", 9, []*Column{good(udf.Int), nil}, []udf.Type{udf.Int, udf.Int}, "column 2: missing"},
		{"type", 9, []*Column{good(udf.Int), good(udf.BigInt)}, []udf.Type{udf.Int, udf.Double}, "column 2: type BIGINT, want DOUBLE"},
		{"bad declared type", 9, []*Column{good(udf.Int)}, []udf.Type{0}, "invalid argument"},
		{"fixed length", 10, []*Column{good(udf.BigInt)}, []udf.Type{udf.BigInt}, "column 1: values are 72 bytes, want at least 80 for 10 BIGINT rows"},
		{"bool length", 17, []*Column{{Type: udf.Boolean, Values: make([]byte, 2)}}, []udf.Type{udf.Boolean}, "values are 2 bytes, want at least 3 for 17 BOOLEAN rows"},
		{"validity length", 9, []*Column{{Type: udf.Int, Validity: []byte{1}, Values: make([]byte, 36)}}, []udf.Type{udf.Int}, "validity is 1 bytes, want 0 or at least 2 for 9 rows"},
		{"offsets on fixed", 1, []*Column{{Type: udf.Int, Offsets: offs(0, 0), Values: make([]byte, 4)}}, []udf.Type{udf.Int}, "want none"},
		{"offsets length", 2, []*Column{{Type: udf.Varchar, Offsets: offs(0, 1), Values: []byte("ab")}}, []udf.Type{udf.Varchar}, "offsets are 8 bytes, want at least 12 for 2 rows"},
		{"negative first offset", 2, []*Column{{Type: udf.Varchar, Offsets: offs(0xffffffff, 1, 2), Values: []byte("ab")}}, []udf.Type{udf.Varchar}, "first offset -1 is negative"},
		// With an element offset, what the rows need is counted from it.
		{"fixed length at offset", 2, []*Column{{Type: udf.Int, Offset: 3, Values: make([]byte, 16)}}, []udf.Type{udf.Int}, "values are 16 bytes, want at least 20 for 2 INT rows at offset 3"},
		{"bool length at offset", 2, []*Column{{Type: udf.Boolean, Offset: 7, Values: make([]byte, 1)}}, []udf.Type{udf.Boolean}, "values are 1 bytes, want at least 2 for 2 BOOLEAN rows at offset 7"},
		{"validity at offset", 2, []*Column{{Type: udf.Int, Offset: 7, Validity: []byte{0xff}, Values: make([]byte, 36)}}, []udf.Type{udf.Int}, "validity is 1 bytes, want 0 or at least 2 for 2 rows at offset 7"},
		{"offsets at offset", 2, []*Column{{Type: udf.Bytes, Offset: 1, Offsets: offs(0, 1, 2), Values: []byte("ab")}}, []udf.Type{udf.Bytes}, "offsets are 12 bytes, want at least 16 for 2 rows at offset 1"},
		{"huge offset", 2, []*Column{{Type: udf.BigInt, Offset: 0xffffffff, Values: make([]byte, 16)}}, []udf.Type{udf.BigInt}, "want at least 34359738376"},
		{"monotonic at offset", 2, []*Column{{Type: udf.Bytes, Offset: 1, Offsets: offs(9, 0, 2, 1), Values: []byte("ab")}}, []udf.Type{udf.Bytes}, "not monotonic at row 1"},
		{"past values at offset", 1, []*Column{{Type: udf.Bytes, Offset: 2, Offsets: offs(0, 0, 1, 3), Values: []byte("ab")}}, []udf.Type{udf.Bytes}, "last offset 3 is past the 2 bytes"},
		// VARCHAR is UTF-8: a row that is not is refused, naming the row.
		{"not UTF-8", 3, []*Column{{Type: udf.Varchar, Offsets: offs(0, 2, 4, 6), Values: []byte("ok\xff\xfeno")}}, []udf.Type{udf.Varchar}, "column 1: row 1 is not valid UTF-8"},
		{"rune split across rows", 2, []*Column{{Type: udf.Varchar, Offsets: offs(0, 1, 2), Values: []byte("\xc3\xa9")}}, []udf.Type{udf.Varchar}, "row 0 is not valid UTF-8"},
		{"not UTF-8 at offset", 2, []*Column{{Type: udf.Varchar, Offset: 1, Validity: []byte{0b011}, Offsets: offs(0, 1, 3, 4), Values: []byte("a\xff\xffb")}}, []udf.Type{udf.Varchar}, "row 0 is not valid UTF-8"},
		{"monotonic", 2, []*Column{{Type: udf.Bytes, Offsets: offs(0, 2, 1), Values: []byte("ab")}}, []udf.Type{udf.Bytes}, "not monotonic at row 1"},
		{"negative", 2, []*Column{{Type: udf.Bytes, Offsets: offs(0, 1, 0x80000000), Values: []byte("ab")}}, []udf.Type{udf.Bytes}, "not monotonic"},
		{"past values", 2, []*Column{{Type: udf.Varchar, Offsets: offs(0, 1, 3), Values: []byte("ab")}}, []udf.Type{udf.Varchar}, "last offset 3 is past the 2 bytes"},
	}
	for _, tc := range tests {
		err := ValidateBatch(&Batch{Rows: tc.rows, Columns: tc.cols}, tc.types)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if err := ValidateBatch(nil, nil); err == nil {
		t.Error("nil batch accepted")
	}
}

// TestValidateBatchAccepts lists columns that are consistent although not
// exact: what Arrow libraries hand over.
func TestValidateBatchAccepts(t *testing.T) {
	offs := func(o ...uint32) []byte {
		var b []byte
		for _, x := range o {
			b = binary.LittleEndian.AppendUint32(b, x)
		}
		return b
	}
	tests := []struct {
		name string
		rows uint32
		col  *Column
		want []any
	}{
		{"padded values", 2, &Column{Type: udf.Int, Values: []byte{1, 0, 0, 0, 2, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9}}, []any{int32(1), int32(2)}},
		{"padded validity", 2, &Column{Type: udf.Int, Validity: []byte{0b10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, Values: make([]byte, 8)}, []any{nil, int32(0)}},
		{"padded bool", 3, &Column{Type: udf.Boolean, Values: []byte{0b101, 0xff}}, []any{true, false, true}},
		{"first offset not 0", 2, &Column{Type: udf.Varchar, Offsets: offs(1, 1, 2), Values: []byte("ab")}, []any{"", "b"}},
		{"offsets past the rows", 1, &Column{Type: udf.Bytes, Offsets: offs(0, 2, 1, 0), Values: []byte("ab")}, []any{"ab"}},
		{"offset into values", 2, &Column{Type: udf.BigInt, Offset: 1, Values: make([]byte, 24)}, []any{int64(0), int64(0)}},
		{"offset into bools", 2, &Column{Type: udf.Boolean, Offset: 7, Values: []byte{0x80, 0x00}}, []any{true, false}},
		{"offset into offsets", 1, &Column{Type: udf.Varchar, Offset: 1, Offsets: offs(0, 1, 3), Values: []byte("abc")}, []any{"bc"}},
		{"offset past an empty batch", 0, &Column{Type: udf.Int, Offset: 2, Values: make([]byte, 8)}, nil},
		{"no offsets, no rows", 0, &Column{Type: udf.Bytes, Offset: 5}, nil},
		{"garbage under a NULL", 2, &Column{Type: udf.Varchar, Validity: []byte{0b10}, Offsets: offs(0, 1, 2), Values: []byte("\xffb")}, []any{nil, "b"}},
	}
	for _, tc := range tests {
		b := &Batch{Rows: tc.rows, Columns: []*Column{tc.col}}
		if err := ValidateBatch(b, []udf.Type{tc.col.Type}); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		in, err := ParseInput(AppendInput(nil, b))
		if err != nil {
			t.Errorf("%s: ParseInput: %v", tc.name, err)
			continue
		}
		for i, w := range tc.want {
			if g := colValue(&in.Cols[0], i); !sameValue(g, w) {
				t.Errorf("%s: row %d = %#v, want %#v", tc.name, i, g, w)
			}
		}
	}
}

func TestParseInputErrors(t *testing.T) {
	b := &Batch{Rows: 9, Columns: []*Column{sampleColumn(udf.Varchar, 9, true), sampleColumn(udf.BigInt, 9, false)}}
	good := AppendInput(nil, b)
	if _, err := ParseInput(good); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	desc := func(col, field int) int { return inHeaderSize + inColSize*col + field }
	tests := []struct {
		name   string
		mutate func(r []byte) []byte
		want   string
	}{
		{"short", func(r []byte) []byte { return r[:15] }, "shorter than"},
		{"magic", func(r []byte) []byte { r[0]++; return r }, "magic"},
		{"version", func(r []byte) []byte { le.PutUint32(r[4:], 2); return r }, "version 2"},
		{"ncols", func(r []byte) []byte { le.PutUint32(r[12:], 1<<30); return r }, "do not fit"},
		{"type", func(r []byte) []byte { le.PutUint32(r[desc(1, 0):], 9); return r }, "column 2: invalid type code 9"},
		{"reserved", func(r []byte) []byte { r[desc(0, 28)] = 1; return r }, "reserved"},
		{"unaligned", func(r []byte) []byte { le.PutUint32(r[desc(1, 12):], le.Uint32(r[desc(1, 12):])+4); return r }, "not 8-byte aligned"},
		{"out of range", func(r []byte) []byte { return r[:len(r)-8] }, "outside"},
		{"header overlap", func(r []byte) []byte { le.PutUint32(r[desc(0, 4):], 8); return r }, "overlaps the"},
		{"fixed len", func(r []byte) []byte { le.PutUint32(r[desc(1, 16):], 64); return r }, "values_len 64"},
		{"offsets on fixed", func(r []byte) []byte { le.PutUint32(r[desc(1, 8):], 80); return r }, "offsets_off"},
		{"no offsets", func(r []byte) []byte { le.PutUint32(r[desc(0, 8):], 0); return r }, "no offsets"},
		{"values_len", func(r []byte) []byte { le.PutUint32(r[desc(0, 16):], 3); return r }, "past the 3 bytes"},
	}
	for _, tc := range tests {
		r := tc.mutate(append([]byte(nil), good...))
		_, err := ParseInput(r)
		if err == nil || !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrBadInput containing %q", tc.name, err, tc.want)
		}
	}
}

// outputCase is an expected result column plus row errors.
type outputCase struct {
	col  *Column
	rows int
	errs map[int]string
}

// checkDecoded checks a DecodeOutput result against want: error rows carry
// their message and are NULL, other rows equal want.col.
func checkDecoded(t *testing.T, name string, got *Column, gotErrs []*RowError, want outputCase) {
	t.Helper()
	if err := ValidateBatch(&Batch{Rows: uint32(want.rows), Columns: []*Column{got}}, []udf.Type{want.col.Type}); err != nil {
		t.Errorf("%s: decoded column is not a valid batch column: %v", name, err)
	}
	if len(gotErrs) != len(want.errs) {
		t.Errorf("%s: %d row errors, want %d: %v", name, len(gotErrs), len(want.errs), gotErrs)
	}
	for _, e := range gotErrs {
		if w, ok := want.errs[int(e.Row)]; !ok || w != e.Message {
			t.Errorf("%s: row %d error %q, want %q", name, e.Row, e.Message, w)
		}
	}
	g, w := protoCol(got), protoCol(want.col)
	for i := range want.rows {
		if _, isErr := want.errs[i]; isErr {
			if g.Valid(i) {
				t.Errorf("%s: error row %d is not NULL", name, i)
			}
			continue
		}
		if gv, wv := colValue(g, i), colValue(w, i); !sameValue(gv, wv) {
			t.Errorf("%s: row %d = %#v, want %#v", name, i, gv, wv)
		}
	}
}

func TestCopyOutputRoundTrip(t *testing.T) {
	for _, typ := range allTypes {
		for _, rows := range rowCounts {
			for _, layout := range []struct {
				name       string
				nulls      bool
				gap        int
				shift      uint32
				errs       bool
				noValidity bool
			}{
				{name: "packed"},
				{name: "nulls", nulls: true},
				{name: "gaps+shift+errors", nulls: true, gap: 3, shift: 5, errs: true},
				{name: "errors without validity", errs: true, noValidity: true},
			} {
				col := sampleColumn(typ, rows, layout.nulls)
				raw := rawFromColumn(col, rows)
				raw.gap, raw.shift = layout.gap, layout.shift
				want := outputCase{col: col, rows: rows, errs: map[int]string{}}
				if layout.errs {
					// Unsorted, with an over-long message that must be cut.
					for _, row := range []int{rows - 1, 0, rows / 2} {
						if _, dup := want.errs[row]; dup || row < 0 || row >= rows {
							continue
						}
						msg := "error in row é" + strings.Repeat("x", row)
						if row == 0 {
							msg = strings.Repeat("é", 600) // 1200 bytes, cut at 1024 on a rune boundary
						}
						raw.errRows = append(raw.errRows, uint32(row))
						raw.errMsgs = append(raw.errMsgs, msg)
						want.errs[row] = string(truncMsg([]byte(msg)))
					}
				}
				mem := make([]byte, 64<<10)
				const ptr = 1000 // deliberately not 8-aligned
				n := raw.write(mem, ptr)
				out, err := CopyOutput([]byte("xx"), mem, ptr, n, rows, typ)
				name := typ.String() + "/" + layout.name
				if err != nil {
					t.Fatalf("%s rows=%d: CopyOutput: %v", name, rows, err)
				}
				got, gotErrs, err := DecodeOutput(out[2:], rows, typ)
				if err != nil {
					t.Fatalf("%s rows=%d: DecodeOutput: %v", name, rows, err)
				}
				checkDecoded(t, name, got, gotErrs, want)
				if w, ok := want.errs[0]; ok && len(w) != 1024 {
					t.Errorf("truncated message is %d bytes, want 1024", len(w))
				}
			}
		}
	}
}

func TestCopyOutputErrors(t *testing.T) {
	le := binary.LittleEndian
	col := sampleColumn(udf.Varchar, 9, true)
	base := rawFromColumn(col, 9)
	base.errRows, base.errMsgs = []uint32{2}, []string{"boom"}
	tests := []struct {
		name   string
		raw    func(o *rawOutput)
		mutate func(r []byte)
		rows   int
		typ    udf.Type
		want   string
	}{
		{name: "rows mismatch", rows: 10, want: "9 rows, want 10"},
		{name: "type mismatch", typ: udf.Bytes, want: "result type VARCHAR, want BYTES"},
		{name: "magic", mutate: func(r []byte) { r[3] = 0 }, want: "magic"},
		{name: "version", mutate: func(r []byte) { le.PutUint32(r[4:], 7) }, want: "version 7"},
		{name: "reserved", mutate: func(r []byte) { r[44] = 1 }, want: "reserved"},
		{name: "validity out of range", mutate: func(r []byte) { le.PutUint32(r[16:], 1<<20) }, want: "validity"},
		{name: "offsets out of range", mutate: func(r []byte) { le.PutUint32(r[20:], 0xfffffffe) }, want: "offsets [4294967294"},
		{name: "values out of range", mutate: func(r []byte) { le.PutUint32(r[28:], 1<<30) }, want: "values"},
		{name: "values in header", mutate: func(r []byte) { le.PutUint32(r[24:], 4) }, want: "overlaps the header"},
		{name: "no offsets", mutate: func(r []byte) { le.PutUint32(r[20:], 0) }, want: "no offsets"},
		{name: "non-monotonic", raw: func(o *rawOutput) {
			o.offsets = append([]byte(nil), o.offsets...)
			le.PutUint32(o.offsets[8:], 1000)
		}, want: "not monotonic at row 2"},
		{name: "last offset past values", raw: func(o *rawOutput) { o.values = o.values[:len(o.values)-1] }, want: "past the"},
		{name: "error row out of range", raw: func(o *rawOutput) { o.errRows = []uint32{9} }, want: "names row 9 of 9"},
		{name: "duplicate error", raw: func(o *rawOutput) {
			o.errRows, o.errMsgs = []uint32{3, 1, 3}, []string{"a", "b", "c"}
		}, want: "row 3 has more than one error"},
		{name: "error table out of range", mutate: func(r []byte) { le.PutUint32(r[32:], 1<<28) }, want: "error table"},
		{name: "message out of range", mutate: func(r []byte) {
			e := le.Uint32(r[36:])
			le.PutUint32(r[e+8:], 1<<20)
		}, want: "error message"},
	}
	for _, tc := range tests {
		raw := base
		if tc.raw != nil {
			tc.raw(&raw)
		}
		mem := make([]byte, 4096)
		n := raw.write(mem, 64)
		if tc.mutate != nil {
			tc.mutate(mem[64:])
		}
		rows, typ := 9, udf.Varchar
		if tc.rows != 0 {
			rows = tc.rows
		}
		if tc.typ != 0 {
			typ = tc.typ
		}
		dst := []byte("keep")
		out, err := CopyOutput(dst, mem, 64, n, rows, typ)
		if err == nil || !errors.Is(err, ErrBadOutput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrBadOutput containing %q", tc.name, err, tc.want)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst changed to %q on error", tc.name, out)
		}
	}

	mem := make([]byte, 4096)
	n := base.write(mem, 64)
	if _, err := CopyOutput(nil, mem, 64, n, 9, udf.Varchar); err != nil {
		t.Fatalf("base case: %v", err)
	}
	if _, err := CopyOutput(nil, mem, 4000, n, 9, udf.Varchar); !errors.Is(err, ErrBadOutput) || !strings.Contains(err.Error(), "outside the 4096-byte memory") {
		t.Errorf("region past memory: %v", err)
	}
	if _, err := CopyOutput(nil, mem, 0xffffffff, 0xffffffff, 9, udf.Varchar); !errors.Is(err, ErrBadOutput) {
		t.Errorf("huge region: %v", err)
	}
	if _, err := CopyOutput(nil, mem, 64, 40, 9, udf.Varchar); !errors.Is(err, ErrBadOutput) || !strings.Contains(err.Error(), "shorter than") {
		t.Errorf("short region: %v", err)
	}
	if _, err := CopyOutput(nil, mem, 0, 0, 9, udf.Varchar); !errors.Is(err, ErrBatchFailed) || errors.Is(err, ErrBadOutput) {
		t.Errorf("guest returned 0: %v", err)
	}
	// Fixed-width results must not have offsets and need exact lengths.
	fixed := rawFromColumn(sampleColumn(udf.BigInt, 9, true), 9)
	fixed.values = fixed.values[:64]
	n = fixed.write(mem, 64)
	if _, err := CopyOutput(nil, mem, 64, n, 9, udf.BigInt); err == nil || !strings.Contains(err.Error(), "values_len 64, want 72") {
		t.Errorf("short BIGINT values: %v", err)
	}
}

func TestDecodeOutputErrors(t *testing.T) {
	le := binary.LittleEndian
	var b OutputBuilder
	b.Reset(udf.BigInt, 9)
	for i := range 9 {
		b.SetInt64(i, int64(i))
	}
	b.SetError(2, "two")
	b.SetError(5, "five")
	good := b.AppendTo(nil)
	if _, _, err := DecodeOutput(good, 9, udf.BigInt); err != nil {
		t.Fatal(err)
	}
	eoff := le.Uint32(good[36:])
	voff := le.Uint32(good[16:])

	r := append([]byte(nil), good...)
	le.PutUint32(r[eoff:], 5) // rows 5, 5
	if _, _, err := DecodeOutput(r, 9, udf.BigInt); err == nil || !strings.Contains(err.Error(), "not strictly increasing") {
		t.Errorf("unsorted errors: %v", err)
	}
	r = append([]byte(nil), good...)
	r[voff] |= 1 << 5
	if _, _, err := DecodeOutput(r, 9, udf.BigInt); err == nil || !strings.Contains(err.Error(), "error row 5 is not NULL") {
		t.Errorf("valid error row: %v", err)
	}
	r = append([]byte(nil), good...)
	le.PutUint32(r[16:], 0)
	if _, _, err := DecodeOutput(r, 9, udf.BigInt); err == nil || !strings.Contains(err.Error(), "no validity") {
		t.Errorf("errors without validity: %v", err)
	}
	if _, _, err := DecodeOutput(good[:47], 9, udf.BigInt); !errors.Is(err, ErrBadOutput) {
		t.Errorf("short region: %v", err)
	}
	// A VARCHAR region whose offsets do not start at 0 is not compact.
	mem := make([]byte, 1024)
	raw := rawFromColumn(sampleColumn(udf.Varchar, 3, false), 3)
	raw.shift = 2
	n := raw.write(mem, 0)
	if _, _, err := DecodeOutput(mem[:n], 3, udf.Varchar); err == nil || !strings.Contains(err.Error(), "first offset is 2") {
		t.Errorf("shifted offsets: %v", err)
	}
	// Invalid UTF-8 in messages is replaced, so the proto can be marshalled.
	b.Reset(udf.BigInt, 1)
	b.SetError(0, "bad \xff byte")
	_, errs, err := DecodeOutput(b.AppendTo(nil), 1, udf.BigInt)
	if err != nil || len(errs) != 1 || errs[0].Message != "bad \uFFFD byte" {
		t.Errorf("invalid UTF-8 message: %v %v", errs, err)
	}
	b.SetError(0, strings.Repeat("\xffa", 512)) // grows when repaired
	_, errs, err = DecodeOutput(b.AppendTo(nil), 1, udf.BigInt)
	if err != nil || len(errs) != 1 || len(errs[0].Message) > MaxMessageLen || !utf8.ValidString(errs[0].Message) {
		t.Errorf("repaired message: %d bytes, %v", len(errs[0].Message), err)
	}
}

func TestOutputBuilder(t *testing.T) {
	var b OutputBuilder
	for _, typ := range []udf.Type{udf.Int, udf.BigInt, udf.Float, udf.Double, udf.Boolean} {
		for _, rows := range rowCounts {
			want := outputCase{col: sampleColumn(typ, rows, true), rows: rows, errs: map[int]string{}}
			b.Reset(typ, rows)
			wc := protoCol(want.col)
			for i := rows - 1; i >= 0; i-- { // any order
				switch v := colValue(wc, i).(type) {
				case nil:
					b.SetNull(i)
				case int32:
					b.SetInt32(i, v)
				case int64:
					b.SetInt64(i, v)
				case float32:
					b.SetFloat32(i, v)
				case float64:
					b.SetFloat64(i, v)
				case bool:
					b.SetBool(i, v)
				}
			}
			if rows > 5 {
				b.SetError(5, "first")
				b.SetError(2, "two")
				b.SetError(5, "five") // last wins
				b.SetNull(5)
				want.errs[2], want.errs[5] = "two", "five"
			}
			out := b.AppendTo([]byte("hdr"))
			got, errs, err := DecodeOutput(out[3:], rows, typ)
			if err != nil {
				t.Fatalf("%s rows=%d: %v", typ.String(), rows, err)
			}
			checkDecoded(t, typ.String(), got, errs, want)
		}
	}

	// Without NULLs the region has no validity bitmap.
	b.Reset(udf.Int, 3)
	for i := range 3 {
		b.SetInt32(i, int32(i))
	}
	got, _, err := DecodeOutput(b.AppendTo(nil), 3, udf.Int)
	if err != nil || got.Validity != nil {
		t.Errorf("all-valid result: validity %v, err %v", got.Validity, err)
	}
	// Unset rows are NULL.
	b.Reset(udf.Int, 3)
	b.SetInt32(1, 5)
	got, _, _ = DecodeOutput(b.AppendTo(nil), 3, udf.Int)
	if c := protoCol(got); c.Valid(0) || !c.Valid(1) || c.Valid(2) {
		t.Errorf("unset rows are not NULL: %08b", got.Validity)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("Reset(VARCHAR) did not panic")
			}
		}()
		b.Reset(udf.Varchar, 1)
	}()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("SetInt64 on an INT result did not panic")
			}
		}()
		b.Reset(udf.Int, 1)
		b.SetInt64(0, 1)
	}()
}

func TestNoAllocs(t *testing.T) {
	b := &Batch{Rows: 1024, Columns: []*Column{sampleColumn(udf.BigInt, 1024, true), sampleColumn(udf.Varchar, 1024, true)}}
	buf := AppendInput(nil, b)
	if n := testing.AllocsPerRun(100, func() { buf = AppendInput(buf[:0], b) }); n != 0 {
		t.Errorf("AppendInput allocates %v times per call", n)
	}
	var ob OutputBuilder
	var out []byte
	if n := testing.AllocsPerRun(100, func() {
		ob.Reset(udf.BigInt, 1024)
		for i := range 1024 {
			ob.SetInt64(i, int64(i))
		}
		ob.SetError(7, "row seven failed")
		out = ob.AppendTo(out[:0])
	}); n != 0 {
		t.Errorf("OutputBuilder allocates %v times per batch", n)
	}
	mem := make([]byte, 64<<10)
	n := rawFromColumn(sampleColumn(udf.Varchar, 1024, true), 1024).write(mem, 8)
	var dst []byte
	if a := testing.AllocsPerRun(100, func() {
		var err error
		if dst, err = CopyOutput(dst[:0], mem, 8, n, 1024, udf.Varchar); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("CopyOutput allocates %v times per call", a)
	}
	if a := testing.AllocsPerRun(100, func() { _, _, _ = DecodeOutput(dst, 1024, udf.Varchar) }); a > 1 {
		t.Errorf("DecodeOutput allocates %v times per call, want 1 (the Column)", a)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = ParseInput(buf) }); a > 1 {
		t.Errorf("ParseInput allocates %v times per call, want 1 (the Cols)", a)
	}
}
