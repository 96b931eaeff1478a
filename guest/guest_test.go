package guest

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/udf"
)

// These tests run the SDK natively: addresses are the low 32 bits of Go
// pointers, consistently for input and output, so Call works unchanged.
// internal/abi's wasm tests run the same code inside wazero.

// run copies region into the SDK's input buffer, calls the export body and
// decodes the output with the host's codec.
func run(t *testing.T, region []byte, rows int, typ udf.Type, export func(ptr, n uint32) uint64) (*abi.Column, []*abi.RowError) {
	t.Helper()
	ptr := alloc(uint32(len(region)))
	if ptr%8 != 0 {
		t.Fatalf("alloc returned unaligned %#x", ptr)
	}
	copy(asBytes(inBuf), region)
	res := export(ptr, uint32(len(region)))
	if res == 0 {
		t.Fatal("export returned 0")
	}
	if uint32(res) != addrOf(outBuf) {
		t.Fatalf("result pointer %#x is not outBuf", uint32(res))
	}
	mem := asBytes(outBuf)
	out, err := abi.CopyOutput(nil, mem, 0, uint32(res>>32), rows, typ)
	if err != nil {
		t.Fatalf("CopyOutput: %v", err)
	}
	// The SDK's own region is already compact.
	if _, _, err := abi.DecodeOutput(mem[:res>>32], rows, typ); err != nil {
		t.Fatalf("DecodeOutput of the raw guest region: %v", err)
	}
	col, errs, err := abi.DecodeOutput(out, rows, typ)
	if err != nil {
		t.Fatalf("DecodeOutput: %v", err)
	}
	return col, errs
}

func bigintBatch(vals ...any) []byte {
	c := &abi.Column{Type: udf.BigInt, Validity: make([]byte, (len(vals)+7)/8)}
	for i, v := range vals {
		x, ok := v.(int64)
		if ok {
			c.Validity[i/8] |= 1 << (i % 8)
		}
		for k := range 8 {
			c.Values = append(c.Values, byte(uint64(x)>>(8*k)))
		}
	}
	return abi.AppendInput(nil, &abi.Batch{Rows: uint32(len(vals)), Columns: []*abi.Column{c}})
}

func varcharBatch(typ udf.Type, vals ...any) []byte {
	c := &abi.Column{Type: typ, Validity: make([]byte, (len(vals)+7)/8), Offsets: make([]byte, 4)}
	for i, v := range vals {
		s, ok := v.(string)
		if ok {
			c.Validity[i/8] |= 1 << (i % 8)
		}
		c.Values = append(c.Values, s...)
		n := len(c.Values)
		c.Offsets = append(c.Offsets, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
	}
	return abi.AppendInput(nil, &abi.Batch{Rows: uint32(len(vals)), Columns: []*abi.Column{c}})
}

func values(col *abi.Column, rows int) []any {
	c := &abi.Col{Type: col.Type, Validity: col.Validity, Offsets: col.Offsets, Values: col.Values}
	if len(c.Validity) == 0 {
		c.Validity = nil
	}
	out := make([]any, rows)
	for i := range rows {
		if !c.Valid(i) {
			continue
		}
		switch c.Type {
		case udf.BigInt:
			out[i] = c.Int64(i)
		case udf.Varchar, udf.Bytes:
			out[i] = string(c.Bytes(i))
		}
	}
	return out
}

func errMap(errs []*abi.RowError) map[uint32]string {
	m := map[uint32]string{}
	for _, e := range errs {
		m[e.Row] = e.Message
	}
	return m
}

func TestMapInt64x2(t *testing.T) {
	a := bigintBatch(int64(1), int64(2), nil, int64(4), int64(0))
	// Two columns: reuse the single-column encoder and merge by hand.
	in, _ := abi.ParseInput(a)
	c := in.Cols[0]
	col := &abi.Column{Type: c.Type, Validity: c.Validity, Values: c.Values}
	b := &abi.Batch{Rows: 5, Columns: []*abi.Column{col, col}}
	region := abi.AppendInput(nil, b)
	got, errs := run(t, region, 5, udf.BigInt, func(ptr, n uint32) uint64 {
		return MapInt64x2(ptr, n, func(x, y int64) (int64, error) {
			if x == 4 {
				return 0, errors.New("four")
			}
			if x == 0 {
				panic("zero")
			}
			return x * y, nil
		})
	})
	want := []any{int64(1), int64(4), nil, nil, nil}
	for i, v := range values(got, 5) {
		if v != want[i] {
			t.Errorf("row %d = %v, want %v", i, v, want[i])
		}
	}
	if m := errMap(errs); len(m) != 2 || m[3] != "four" || m[4] != "panic: zero" {
		t.Errorf("errors %v", m)
	}
}

func TestMapStringAndBytes(t *testing.T) {
	long := strings.Repeat("é", 700)
	region := varcharBatch(udf.Varchar, "a", nil, "", "fail", long)
	got, errs := run(t, region, 5, udf.Varchar, func(ptr, n uint32) uint64 {
		return MapString(ptr, n, func(s string) (string, error) {
			if s == "fail" {
				return "", errors.New("failed: " + long)
			}
			return strings.ToUpper(s) + "|", nil
		})
	})
	want := []any{"A|", nil, "|", nil, strings.ToUpper(long) + "|"}
	for i, v := range values(got, 5) {
		if v != want[i] {
			t.Errorf("row %d = %.20v, want %.20v", i, v, want[i])
		}
	}
	if m := errMap(errs); len(m) != 1 || len(m[3]) != 1024 || !strings.HasPrefix(m[3], "failed: é") {
		t.Errorf("errors %.40v (len %d)", m, len(m[3]))
	}

	region = varcharBatch(udf.Bytes, "\x00\x01", nil)
	got, _ = run(t, region, 2, udf.Bytes, func(ptr, n uint32) uint64 {
		return MapBytes(ptr, n, func(b []byte) ([]byte, error) { return append([]byte{9}, b...), nil })
	})
	if v := values(got, 2); v[0] != "\x09\x00\x01" || v[1] != nil {
		t.Errorf("MapBytes = %q", v)
	}
}

func TestCallErrorsAndOrder(t *testing.T) {
	region := varcharBatch(udf.Varchar, "a", "b", "c", nil)
	// Rows set out of order, overwritten, and errors set twice.
	got, errs := run(t, region, 4, udf.Varchar, func(ptr, n uint32) uint64 {
		return Call(ptr, n, Varchar, func(in *Batch, out *Result) error {
			c := in.Col(0)
			for row := in.Rows() - 1; row >= 0; row-- {
				if !c.IsNull(row) {
					out.SetString(row, c.String(row)+c.String(row))
				}
			}
			out.SetString(2, "C")
			out.SetError(0, nil)
			out.SetError(0, errors.New("zero"))
			return nil
		})
	})
	want := []any{nil, "bb", "C", nil}
	for i, v := range values(got, 4) {
		if v != want[i] {
			t.Errorf("row %d = %v, want %v", i, v, want[i])
		}
	}
	if m := errMap(errs); len(m) != 1 || m[0] != "zero" {
		t.Errorf("errors %v", m)
	}

	// A Call function that panics fails every row.
	_, errs = run(t, region, 4, udf.BigInt, func(ptr, n uint32) uint64 {
		return Call(ptr, n, BigInt, func(in *Batch, out *Result) error {
			out.SetInt64(0, 1)
			_ = in.Col(0).Int64(0) // VARCHAR column
			return nil
		})
	})
	if m := errMap(errs); len(m) != 4 || m[3] != "panic: guest: column 0 is VARCHAR, not BIGINT" {
		t.Errorf("errors %v", m)
	}
}

func TestCallRowsAllTypes(t *testing.T) {
	// One column per type, echoed by CallRows into a result of that type.
	for _, typ := range []Type{Int, BigInt, Float, Double, Boolean, Varchar, Bytes} {
		c := &abi.Column{Type: udf.Type(typ)}
		rows := 10
		switch {
		case typ.varlen():
			c.Offsets = make([]byte, 4*(rows+1))
			c.Values = []byte("0123456789")
			for i := range rows + 1 {
				c.Offsets[4*i] = byte(i)
			}
		default:
			c.Values = make([]byte, typ.valuesLen(rows))
			for i := range c.Values {
				c.Values[i] = byte(i*37 + 1)
			}
		}
		c.Validity = []byte{0b11110111, 0b01}
		region := abi.AppendInput(nil, &abi.Batch{Rows: uint32(rows), Columns: []*abi.Column{c}})
		got, errs := run(t, region, rows, udf.Type(typ), func(ptr, n uint32) uint64 {
			return CallRows(ptr, n, typ, func(in *Batch, row int, out *Result) error {
				col := in.Col(0)
				switch typ {
				case Int:
					out.SetInt32(row, col.Int32(row))
				case BigInt:
					out.SetInt64(row, col.Int64(row))
				case Float:
					out.SetFloat32(row, col.Float32(row))
				case Double:
					out.SetFloat64(row, col.Float64(row))
				case Boolean:
					out.SetBool(row, col.Bool(row))
				default:
					out.SetBytes(row, col.Bytes(row))
				}
				return nil
			})
		})
		if len(errs) != 0 {
			t.Errorf("%v: errors %v", typ, errs)
		}
		in, _ := abi.ParseInput(region)
		g := &abi.Col{Type: got.Type, Validity: got.Validity, Offsets: got.Offsets, Values: got.Values}
		w := &in.Cols[0]
		for i := range rows {
			if g.Valid(i) != w.Valid(i) {
				t.Errorf("%v row %d: valid %v, want %v", typ, i, g.Valid(i), w.Valid(i))
				continue
			}
			if !w.Valid(i) {
				continue
			}
			var same bool
			switch typ {
			case Int, Float:
				same = g.Int32(i) == w.Int32(i)
			case BigInt, Double:
				same = g.Int64(i) == w.Int64(i)
			case Boolean:
				same = g.Bool(i) == w.Bool(i)
			default:
				same = string(g.Bytes(i)) == string(w.Bytes(i))
			}
			if !same {
				t.Errorf("%v row %d differs", typ, i)
			}
		}
	}
}

func TestRejectsBadInput(t *testing.T) {
	region := bigintBatch(int64(1))
	ptr := alloc(uint32(len(region)))
	copy(asBytes(inBuf), region)
	ident := func(a int64) (int64, error) { return a, nil }
	if MapInt64(ptr, uint32(len(region)), ident) == 0 {
		t.Fatal("good input rejected")
	}
	if MapInt64(ptr-8, uint32(len(region)), ident) != 0 {
		t.Error("pointer before the input buffer accepted")
	}
	if MapInt64(ptr, uint32(len(asBytes(inBuf)))+1, ident) != 0 {
		t.Error("length past the input buffer accepted")
	}
	asBytes(inBuf)[0] = 0
	if MapInt64(ptr, uint32(len(region)), ident) != 0 {
		t.Error("bad magic accepted")
	}
	if alloc(maxAlloc+1) != 0 {
		t.Error("huge alloc did not return 0")
	}
}

func TestNoGrowth(t *testing.T) {
	region := varcharBatch(udf.Varchar, "abc", nil, "défg", "x")
	ptr := alloc(uint32(len(region)))
	copy(asBytes(inBuf), region)
	upper := func(s string) (string, error) { return strings.ToUpper(s), nil }
	MapString(ptr, uint32(len(region)), upper)
	ident := func(s string) (string, error) { return s, nil }
	allocs := testing.AllocsPerRun(100, func() { MapString(ptr, uint32(len(region)), ident) })
	if allocs > 0 {
		t.Errorf("MapString allocates %v times per batch", allocs)
	}
	before := &outBuf[0]
	for range 100 {
		MapString(ptr, uint32(len(region)), upper)
	}
	if &outBuf[0] != before {
		t.Error("output buffer was reallocated for identical batches")
	}
}

func TestHelpers(t *testing.T) {
	for _, v := range []int64{0, 7, -7, 1234567890, math.MaxInt64, math.MinInt64} {
		if got := itoa(v); got != strconv.FormatInt(v, 10) {
			t.Errorf("itoa(%d) = %q", v, got)
		}
	}
	if got := truncMsg(strings.Repeat("a", 1023) + "é"); len(got) != 1023 {
		t.Errorf("truncMsg split a rune: %d bytes", len(got))
	}
	if BigInt.String() != "BIGINT" || Type(99).String() != "type(99)" {
		t.Error("Type.String")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(bigintBatch(int64(1), nil, int64(3)))
	f.Add(varcharBatch(udf.Varchar, "a", nil, "bc"))
	f.Add([]byte("UDFB"))
	f.Fuzz(func(t *testing.T, buf []byte) {
		var b Batch
		if !b.parse(buf) {
			return
		}
		if _, err := abi.ParseInput(buf); err != nil && !strings.Contains(err.Error(), "aligned") &&
			!strings.Contains(err.Error(), "reserved") && !strings.Contains(err.Error(), "overlaps") &&
			!strings.Contains(err.Error(), "offsets_off") {
			t.Fatalf("guest accepts what the host rejects: %v", err)
		}
		for i := range b.NumCols() {
			c := b.Col(i)
			for row := range b.Rows() {
				_ = c.IsNull(row)
				switch c.Type() {
				case Int:
					c.Int32(row)
				case BigInt:
					c.Int64(row)
				case Float:
					c.Float32(row)
				case Double:
					c.Float64(row)
				case Boolean:
					c.Bool(row)
				default:
					_ = c.String(row)
				}
			}
		}
	})
}
