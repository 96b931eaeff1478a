package abi

import (
	"bytes"
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/udfhost/udfhost/internal/udf"
)

// checkExactResult checks that col is a result as docs/ABI.md promises:
// offset 0, exact buffers, rows+1 offsets for VARCHAR/BYTES starting at 0,
// and that Arrow's own validation accepts it as an array of rows rows.
func checkExactResult(t *testing.T, name string, col *Column, rows int) {
	t.Helper()
	if col.Offset != 0 {
		t.Errorf("%s: result offset %d, want 0", name, col.Offset)
	}
	if n := len(col.Validity); n != 0 && n != bitmapLen(rows) {
		t.Errorf("%s: %d bytes of validity, want 0 or %d", name, n, bitmapLen(rows))
	}
	if col.Type.Varlen() {
		if len(col.Offsets) != 4*(rows+1) {
			t.Fatalf("%s: %d bytes of offsets, want %d (rows+1 offsets)", name, len(col.Offsets), 4*(rows+1))
		}
		if first, last := le.Uint32(col.Offsets), le.Uint32(col.Offsets[4*rows:]); first != 0 || int(last) != len(col.Values) {
			t.Errorf("%s: offsets from %d to %d over %d bytes, want from 0 to the end", name, first, last, len(col.Values))
		}
	} else if len(col.Offsets) != 0 || len(col.Values) != valuesLen(col.Type, rows) {
		t.Errorf("%s: %d bytes of offsets and %d of values, want 0 and %d", name, len(col.Offsets), len(col.Values), valuesLen(col.Type, rows))
	}
	// Arrow's full validation (which also checks UTF-8 for strings).
	if a := arrowFromColumn(col, rows); a != nil {
		defer a.Release()
		if err := a.ValidateFull(); err != nil {
			t.Errorf("%s: Arrow refuses the result: %v", name, err)
		}
	}
}

// arrowFromColumn wraps a VARCHAR or BYTES result column's buffers as an
// Arrow array (nil for other types).
func arrowFromColumn(col *Column, rows int) interface {
	arrow.Array
	ValidateFull() error
} {
	if !col.Type.Varlen() {
		return nil
	}
	var validity *memory.Buffer
	if len(col.Validity) > 0 {
		validity = memory.NewBufferBytes(col.Validity)
	}
	bufs := []*memory.Buffer{validity, memory.NewBufferBytes(col.Offsets), memory.NewBufferBytes(col.Values)}
	d := array.NewData(arrowTypes[col.Type], rows, bufs, nil, array.UnknownNullCount, 0)
	defer d.Release()
	if col.Type == udf.Varchar {
		return array.NewStringData(d)
	}
	return array.NewBinaryData(d)
}

func TestEmptyResult(t *testing.T) {
	for _, typ := range allTypes {
		col := EmptyResult(typ)
		if col.Type != typ {
			t.Errorf("EmptyResult(%s).Type = %s", typ.String(), col.Type.String())
		}
		checkExactResult(t, "EmptyResult("+typ.String()+")", col, 0)
	}
	// Each call has its own offsets: a caller may modify one result.
	a, b := EmptyResult(udf.Varchar), EmptyResult(udf.Varchar)
	a.Offsets[0] = 1
	if b.Offsets[0] != 0 {
		t.Error("EmptyResult results share their offsets")
	}
}

// TestDecodeOutputZeroRows: a 0-row VARCHAR/BYTES result carries its one
// offset, whether the region had offsets (CopyOutput's) or not (a guest's).
func TestDecodeOutputZeroRows(t *testing.T) {
	for _, typ := range allTypes {
		mem := make([]byte, 256)
		raw := rawOutput{rows: 0, typ: typ, noOffsets: true}
		n := raw.write(mem, 8)
		col, errs, err := DecodeOutput(mem[8:8+n], 0, typ)
		if err != nil || len(errs) != 0 {
			t.Fatalf("%s: %v %v", typ.String(), errs, err)
		}
		checkExactResult(t, "DecodeOutput "+typ.String(), col, 0)

		compact, err := CopyOutput(nil, mem, 8, n, 0, typ)
		if err != nil {
			t.Fatal(err)
		}
		col, _, err = DecodeOutput(compact, 0, typ)
		if err != nil {
			t.Fatal(err)
		}
		checkExactResult(t, "CopyOutput+DecodeOutput "+typ.String(), col, 0)
	}
}

// TestDecodeOutputVarcharMustBeUTF8: a VARCHAR result row that is not valid
// UTF-8 becomes a row error naming the row, its result NULL; the other rows
// and the guest's own row errors stand; BYTES results are not affected.
func TestDecodeOutputVarcharMustBeUTF8(t *testing.T) {
	rowsIn := []string{"ok", "\xff", "guest error", "\xc3", "\xa9", "", "straße", "\xed\xa0\x80", "end"}
	const guestErrRow = 2
	bad := map[int]bool{1: true, 3: true, 4: true, 7: true} // rows 3 and 4 split one rune
	for _, typ := range []udf.Type{udf.Varchar, udf.Bytes} {
		for _, nulls := range []bool{false, true} {
			name := fmt.Sprintf("%s nulls=%v", typ.String(), nulls)
			cb := newColBuilder(typ)
			for i, s := range rowsIn {
				if i == guestErrRow || nulls && i == 5 {
					cb.add(nil)
				} else {
					cb.add(s)
				}
			}
			raw := rawFromColumn(cb.column(), len(rowsIn))
			if raw.validity == nil {
				raw.validity = []byte{0xff, 0xff}
				raw.validity[guestErrRow/8] &^= 1 << (guestErrRow % 8)
			}
			raw.errRows, raw.errMsgs = []uint32{guestErrRow}, []string{"from the guest"}
			mem := make([]byte, 1024)
			n := raw.write(mem, 0)
			compact, err := CopyOutput(nil, mem, 0, n, len(rowsIn), typ)
			if err != nil {
				t.Fatalf("%s: CopyOutput: %v", name, err)
			}
			col, errs, err := DecodeOutput(compact, len(rowsIn), typ)
			if err != nil {
				t.Fatalf("%s: DecodeOutput: %v", name, err)
			}
			wantErrs := map[int]string{guestErrRow: "from the guest"}
			want := make([]any, len(rowsIn))
			for i, s := range rowsIn {
				switch {
				case i == guestErrRow || nulls && i == 5:
				case typ == udf.Varchar && bad[i]:
					wantErrs[i] = fmt.Sprintf("row %d: result is not valid UTF-8", i)
				default:
					want[i] = s
				}
			}
			checkRows(t, name, col, errs, want, wantErrs)
			for i := 1; i < len(errs); i++ {
				if errs[i].Row <= errs[i-1].Row {
					t.Errorf("%s: row errors not in row order: %v", name, errs)
				}
			}
			if typ == udf.Varchar && !utf8.Valid(col.Values) {
				t.Errorf("%s: result values still hold invalid UTF-8: %q", name, col.Values)
			}
			checkExactResult(t, name, col, len(rowsIn))
		}
	}

	// The common case does not copy: a valid result aliases the region.
	cb := newColBuilder(udf.Varchar)
	for _, s := range []string{"a", "é", "", "ß"} {
		cb.add(s)
	}
	mem := make([]byte, 512)
	n := rawFromColumn(cb.column(), 4).write(mem, 0)
	compact, _ := CopyOutput(nil, mem, 0, n, 4, udf.Varchar)
	col, errs, err := DecodeOutput(compact, 4, udf.Varchar)
	if err != nil || len(errs) != 0 {
		t.Fatal(errs, err)
	}
	if len(col.Values) > 0 && &col.Values[0] != &compact[bytes.Index(compact, []byte("aé"))] {
		t.Error("a valid VARCHAR result was copied")
	}
}
