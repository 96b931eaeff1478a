package abi

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/udfhost/udfhost/internal/udf"
)

// These tests hand over buffers made by the Apache Arrow Go library exactly
// as it holds them: builders (buffers padded to 64 bytes), IPC round trips
// (8-byte-padded views into the message body) and array.NewSlice slices
// (the parent's buffers plus an element offset). The host must read the
// same values as Arrow, row by row, NULLs included.

var arrowTypes = map[udf.Type]arrow.DataType{
	udf.Int:     arrow.PrimitiveTypes.Int32,
	udf.BigInt:  arrow.PrimitiveTypes.Int64,
	udf.Float:   arrow.PrimitiveTypes.Float32,
	udf.Double:  arrow.PrimitiveTypes.Float64,
	udf.Boolean: arrow.FixedWidthTypes.Boolean,
	udf.Varchar: arrow.BinaryTypes.String,
	udf.Bytes:   arrow.BinaryTypes.Binary,
}

// arrowArray builds rows sample values of type t with Arrow's builder; with
// nulls, every row sampleNull marks is NULL.
func arrowArray(t udf.Type, rows int, nulls bool) arrow.Array {
	b := array.NewBuilder(memory.DefaultAllocator, arrowTypes[t])
	defer b.Release()
	for i := range rows {
		if nulls && sampleNull(i) {
			b.AppendNull()
			continue
		}
		switch v := sampleValue(t, i).(type) {
		case int32:
			b.(*array.Int32Builder).Append(v)
		case int64:
			b.(*array.Int64Builder).Append(v)
		case float32:
			b.(*array.Float32Builder).Append(v)
		case float64:
			b.(*array.Float64Builder).Append(v)
		case bool:
			b.(*array.BooleanBuilder).Append(v)
		case string:
			if t == udf.Varchar {
				b.(*array.StringBuilder).Append(v)
			} else {
				b.(*array.BinaryBuilder).Append([]byte(v))
			}
		}
	}
	return b.NewArray()
}

// arrowColumn hands an Arrow array's buffers and offset over unchanged, as
// a task manager holding Arrow vectors does.
func arrowColumn(t udf.Type, a arrow.Array) *Column {
	d := a.Data()
	bufs := d.Buffers()
	c := &Column{Type: t, Offset: uint32(d.Offset())}
	if bufs[0] != nil && a.NullN() > 0 {
		c.Validity = bufs[0].Bytes()
	}
	if t.Varlen() {
		if bufs[1] != nil {
			c.Offsets = bufs[1].Bytes()
		}
		if len(bufs) > 2 && bufs[2] != nil {
			c.Values = bufs[2].Bytes()
		}
	} else if bufs[1] != nil {
		c.Values = bufs[1].Bytes()
	}
	return c
}

// arrowValue returns row i of a as colValue would.
func arrowValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int32:
		return a.Value(i)
	case *array.Int64:
		return a.Value(i)
	case *array.Float32:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	}
	return fmt.Sprintf("unexpected %T", a)
}

// checkArrowBatch validates cols against the Arrow arrays they came from,
// lays them into an input region and checks that the region is what guests
// expect (offset 0, offsets from 0, exact values) and holds Arrow's values.
func checkArrowBatch(t *testing.T, name string, arrs []arrow.Array, cols []*Column) {
	t.Helper()
	rows := 0
	if len(arrs) > 0 {
		rows = arrs[0].Len()
	}
	types := make([]udf.Type, len(cols))
	for i, c := range cols {
		types[i] = c.Type
	}
	b := &Batch{Rows: uint32(rows), Columns: cols}
	if err := ValidateBatch(b, types); err != nil {
		t.Fatalf("%s: ValidateBatch: %v", name, err)
	}
	region := AppendInput(nil, b)
	if len(region) != InputSize(b) {
		t.Fatalf("%s: AppendInput wrote %d bytes, InputSize says %d", name, len(region), InputSize(b))
	}
	in, err := ParseInput(region)
	if err != nil {
		t.Fatalf("%s: ParseInput: %v", name, err)
	}
	for ci := range in.Cols {
		c := &in.Cols[ci]
		if w := fixedWidth(c.Type); w >= 0 && len(c.Values) != valuesLen(c.Type, rows) {
			t.Errorf("%s col %d: %d bytes of values in the input, want exactly %d", name, ci, len(c.Values), valuesLen(c.Type, rows))
		}
		if c.Type.Varlen() {
			if last := int(le.Uint32(c.Offsets[4*rows:])); last != len(c.Values) {
				t.Errorf("%s col %d: last offset %d, %d bytes of values; want exact", name, ci, last, len(c.Values))
			}
		}
		if c.Validity != nil && len(c.Validity) != bitmapLen(rows) {
			t.Errorf("%s col %d: %d bytes of validity, want %d", name, ci, len(c.Validity), bitmapLen(rows))
		}
		for i := range rows {
			if g, w := colValue(c, i), arrowValue(arrs[ci], i); !sameValue(g, w) {
				t.Errorf("%s col %d (%s) row %d = %#v, Arrow has %#v", name, ci, c.Type.String(), i, g, w)
			}
		}
	}
}

func TestArrowBuilderBuffers(t *testing.T) {
	for _, typ := range allTypes {
		for _, rows := range []int{0, 1, 7, 8, 9, 37, 100} {
			for _, nulls := range []bool{false, true} {
				a := arrowArray(typ, rows, nulls)
				name := fmt.Sprintf("%s rows=%d nulls=%v", typ.String(), rows, nulls)
				checkArrowBatch(t, name, []arrow.Array{a}, []*Column{arrowColumn(typ, a)})
				a.Release()
			}
		}
	}
}

func TestArrowSlices(t *testing.T) {
	const parentRows = 64
	for _, typ := range allTypes {
		for _, nulls := range []bool{false, true} {
			parent := arrowArray(typ, parentRows, nulls)
			for off := 0; off <= 19; off++ {
				for _, n := range []int{0, 1, 5, 8, 13, 40} {
					s := array.NewSlice(parent, int64(off), int64(off+n))
					name := fmt.Sprintf("%s nulls=%v slice [%d:%d]", typ.String(), nulls, off, off+n)
					if s.Data().Offset() != off {
						t.Fatalf("%s: Arrow offset %d", name, s.Data().Offset())
					}
					checkArrowBatch(t, name, []arrow.Array{s}, []*Column{arrowColumn(typ, s)})
					s.Release()
				}
			}
			parent.Release()
		}
	}
}

// TestArrowSlicesEveryTypeInOneBatch puts slices of all types, each at a
// different offset, side by side in one batch.
func TestArrowSlicesEveryTypeInOneBatch(t *testing.T) {
	for _, nulls := range []bool{false, true} {
		var arrs []arrow.Array
		var cols []*Column
		for i, typ := range allTypes {
			parent := arrowArray(typ, 90, nulls)
			s := array.NewSlice(parent, int64(3*i+1), int64(3*i+1+29))
			parent.Release()
			arrs = append(arrs, s)
			cols = append(cols, arrowColumn(typ, s))
		}
		checkArrowBatch(t, "nulls="+strconv.FormatBool(nulls), arrs, cols)
	}
}

// TestArrowIPCRoundTrip writes a record with Arrow's IPC writer, reads it
// back and hands over the reader's buffers (views into the message body,
// padded to 8 bytes) as they are, also for slices.
func TestArrowIPCRoundTrip(t *testing.T) {
	for _, rows := range []int{0, 1, 9, 37} {
		for _, nulls := range []bool{false, true} {
			var fields []arrow.Field
			var arrs []arrow.Array
			for _, typ := range allTypes {
				fields = append(fields, arrow.Field{Name: typ.String(), Type: arrowTypes[typ], Nullable: true})
				arrs = append(arrs, arrowArray(typ, rows, nulls))
			}
			schema := arrow.NewSchema(fields, nil)
			rec := array.NewRecordBatch(schema, arrs, int64(rows))
			var buf bytes.Buffer
			w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			rec.Release()
			for _, a := range arrs {
				a.Release()
			}

			r, err := ipc.NewReader(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Next() {
				t.Fatalf("IPC reader: no record: %v", r.Err())
			}
			got := r.RecordBatch()
			name := fmt.Sprintf("IPC rows=%d nulls=%v", rows, nulls)
			var cols []*Column
			var read []arrow.Array
			for i, typ := range allTypes {
				read = append(read, got.Column(i))
				cols = append(cols, arrowColumn(typ, got.Column(i)))
			}
			checkArrowBatch(t, name, read, cols)

			// Slices of what the reader handed out.
			if rows > 3 {
				cols, read = nil, nil
				for i, typ := range allTypes {
					s := array.NewSlice(got.Column(i), 3, int64(rows))
					defer s.Release()
					read = append(read, s)
					cols = append(cols, arrowColumn(typ, s))
				}
				checkArrowBatch(t, name+" sliced", read, cols)
			}
			r.Release()
		}
	}
}

// TestArrowSlicesThroughGuest runs sliced Arrow arrays of every type through
// the SDK's echo guest: what comes back is what Arrow holds.
func TestArrowSlicesThroughGuest(t *testing.T) {
	g := newGuest(t, "guest/internal/testudf")
	for _, typ := range allTypes {
		parent := arrowArray(typ, 64, true)
		for _, off := range []int{0, 1, 3, 7, 8, 9, 15, 17} {
			s := array.NewSlice(parent, int64(off), int64(off+23))
			b := &Batch{Rows: 23, Columns: []*Column{arrowColumn(typ, s)}}
			export := "echo_" + stringsToLower(typ.String())
			col, errs, err := g.call(export, b, []udf.Type{typ}, typ)
			if err != nil || len(errs) != 0 {
				t.Fatalf("%s offset %d: %v %v", export, off, errs, err)
			}
			want := make([]any, 23)
			for i := range want {
				want[i] = arrowValue(s, i)
			}
			checkRows(t, fmt.Sprintf("%s offset %d", export, off), col, errs, want, nil)
			s.Release()
		}
		parent.Release()
	}
}

func stringsToLower(s string) string { return string(bytes.ToLower([]byte(s))) }
