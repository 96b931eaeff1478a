package abi

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/udfhost/udfhost/internal/udf"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// seedInputs returns valid input regions of every type plus a few broken ones.
func seedInputs() [][]byte {
	var seeds [][]byte
	for _, rows := range []int{0, 1, 9} {
		b := &Batch{Rows: uint32(rows)}
		for _, typ := range allTypes {
			b.Columns = append(b.Columns, sampleColumn(typ, rows, true))
		}
		seeds = append(seeds, AppendInput(nil, b))
		for _, typ := range allTypes {
			one := &Batch{Rows: uint32(rows), Columns: []*Column{sampleColumn(typ, rows, rows > 1)}}
			seeds = append(seeds, AppendInput(nil, one))
		}
	}
	full := seeds[len(seeds)-8]
	seeds = append(seeds, nil, full[:16], full[:len(full)/2])
	return seeds
}

func FuzzParseInput(f *testing.F) {
	for _, s := range seedInputs() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		in, err := ParseInput(buf)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error does not wrap ErrBadInput: %v", err)
			}
			return
		}
		// Every accessor works on every row, and the parsed columns form a
		// valid batch that survives a round trip.
		b := &Batch{Rows: uint32(in.Rows)}
		types := make([]udf.Type, len(in.Cols))
		for i := range in.Cols {
			c := &in.Cols[i]
			for row := range in.Rows {
				_ = colValue(c, row)
			}
			types[i] = c.Type
			b.Columns = append(b.Columns, &Column{Type: c.Type, Validity: c.Validity, Offsets: c.Offsets, Values: c.Values})
		}
		if err := ValidateBatch(b, types); err != nil {
			// ParseInput leaves UTF-8 to the host, which checked it before
			// laying out the input.
			if strings.Contains(err.Error(), "is not valid UTF-8") {
				return
			}
			t.Fatalf("parsed input is not a valid batch: %v", err)
		}
		in2, err := ParseInput(AppendInput(nil, b))
		if err != nil {
			t.Fatalf("re-encoded input does not parse: %v", err)
		}
		for i := range in.Cols {
			checkColumn(t, "re-encoded", &in2.Cols[i], &in.Cols[i], in.Rows)
		}
	})
}

// seedOutputs returns guest-style output regions with their rows and type.
func seedOutputs() (regions [][]byte, rows []int, types []udf.Type) {
	for _, typ := range allTypes {
		for _, n := range []int{0, 3, 9} {
			raw := rawFromColumn(sampleColumn(typ, n, true), n)
			if n > 2 {
				raw.errRows, raw.errMsgs = []uint32{2, 0}, []string{"two", "zero"}
				raw.gap, raw.shift = 1, 3
			}
			mem := make([]byte, 2048)
			l := raw.write(mem, 0)
			regions = append(regions, mem[:l])
			rows = append(rows, n)
			types = append(types, typ)
		}
	}
	return regions, rows, types
}

func FuzzCopyOutput(f *testing.F) {
	regions, rows, types := seedOutputs()
	for i, r := range regions {
		mem := append(make([]byte, 5), r...)
		f.Add(mem, uint32(5), uint32(len(r)), uint16(rows[i]), uint8(types[i]))
	}
	f.Add([]byte{}, uint32(0), uint32(0), uint16(0), uint8(udf.Int))
	f.Add(make([]byte, 64), uint32(8), uint32(0xfffffff0), uint16(1), uint8(udf.Boolean))
	f.Fuzz(func(t *testing.T, mem []byte, ptr, n uint32, rows uint16, typ uint8) {
		out, err := CopyOutput(nil, mem, ptr, n, int(rows), udf.Type(typ))
		if err != nil {
			if !errors.Is(err, ErrBadOutput) && !errors.Is(err, ErrBatchFailed) {
				t.Fatalf("error wraps neither ErrBadOutput nor ErrBatchFailed: %v", err)
			}
			return
		}
		// Whatever CopyOutput accepts, DecodeOutput accepts, and the column
		// is a valid batch column.
		col, errs, err := DecodeOutput(out, int(rows), udf.Type(typ))
		if err != nil {
			t.Fatalf("DecodeOutput rejects CopyOutput's region: %v", err)
		}
		b := &Batch{Rows: uint32(rows), Columns: []*Column{col}}
		if err := ValidateBatch(b, []udf.Type{udf.Type(typ)}); err != nil {
			t.Fatalf("decoded column is invalid: %v", err)
		}
		for _, e := range errs {
			if int(e.Row) >= int(rows) || len(e.Message) > MaxMessageLen || !utf8.ValidString(e.Message) {
				t.Fatalf("bad row error %v", e)
			}
		}
	})
}

func FuzzDecodeOutput(f *testing.F) {
	regions, rows, types := seedOutputs()
	for i, r := range regions {
		if out, err := CopyOutput(nil, r, 0, uint32(len(r)), rows[i], types[i]); err == nil {
			f.Add(out, uint16(rows[i]), uint8(types[i]))
		}
		f.Add(r, uint16(rows[i]), uint8(types[i]))
	}
	var b OutputBuilder
	b.Reset(udf.Double, 10)
	b.SetFloat64(3, 1.5)
	b.SetError(4, "four")
	f.Add(b.AppendTo(nil), uint16(10), uint8(udf.Double))
	f.Fuzz(func(t *testing.T, buf []byte, rows uint16, typ uint8) {
		col, errs, err := DecodeOutput(buf, int(rows), udf.Type(typ))
		if err != nil {
			if !errors.Is(err, ErrBadOutput) {
				t.Fatalf("error does not wrap ErrBadOutput: %v", err)
			}
			return
		}
		b := &Batch{Rows: uint32(rows), Columns: []*Column{col}}
		if err := ValidateBatch(b, []udf.Type{udf.Type(typ)}); err != nil {
			t.Fatalf("decoded column is invalid: %v", err)
		}
		// Results are exact, and a VARCHAR result's bytes all UTF-8.
		if col.Type.Varlen() {
			if len(col.Offsets) != 4*(int(rows)+1) {
				t.Fatalf("%d bytes of offsets for %d rows", len(col.Offsets), rows)
			}
			if col.Type == udf.Varchar && !rowsUTF8(col.Offsets, col.Values, int(rows)) {
				t.Fatalf("VARCHAR result holds bytes that are not UTF-8")
			}
		}
		c := protoCol(col)
		for row := range int(rows) {
			_ = colValue(c, row)
		}
		for _, e := range errs {
			if int(e.Row) >= int(rows) || c.Valid(int(e.Row)) {
				t.Fatalf("bad row error %v", e)
			}
		}
	})
}

// seedBatches returns valid batches of every type plus broken ones: wrong
// lengths, bad offsets, a nil column, absurd row counts.
func seedBatches() []*Batch {
	var seeds []*Batch
	for _, rows := range []int{0, 1, 9} {
		b := &Batch{Rows: uint32(rows)}
		for _, typ := range allTypes {
			b.Columns = append(b.Columns, sampleColumn(typ, rows, true))
		}
		seeds = append(seeds, b)
	}
	v := sampleColumn(udf.Varchar, 3, true)
	seeds = append(seeds,
		&Batch{Rows: 3, Columns: []*Column{{Type: udf.Varchar, Offsets: v.Offsets[:8], Values: v.Values}}},
		&Batch{Rows: 3, Columns: []*Column{{Type: udf.Bytes, Offsets: []byte{0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0}, Values: []byte("ab")}}},
		&Batch{Rows: 2, Columns: []*Column{{Type: udf.BigInt, Values: make([]byte, 15)}}},
		&Batch{Rows: 9, Columns: []*Column{{Type: udf.Boolean, Values: make([]byte, 2), Validity: []byte{1}}}},
		&Batch{Rows: 1, Columns: []*Column{nil, {Type: 99, Values: []byte{1}}}},
		&Batch{Rows: 0xffffffff},
		&Batch{Rows: 0xffffffff, Columns: []*Column{{Type: udf.Varchar}}},
	)
	return seeds
}

// FuzzValidateBatch feeds ValidateBatch what a task manager could send:
// whatever it accepts must lay out and parse back to the same rows.
func FuzzValidateBatch(f *testing.F) {
	for _, b := range seedBatches() {
		data, err := proto.Marshal(toProto(b))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var pb udfhostv1.Batch
		if proto.Unmarshal(data, &pb) != nil {
			return
		}
		b := fromProto(&pb)
		// The batch's own types (so valid batches get through), a fixed
		// list, and nothing.
		own := make([]udf.Type, len(b.Columns))
		for i, c := range b.Columns {
			if c != nil {
				own[i] = c.Type
			}
		}
		for _, types := range [][]udf.Type{own, {udf.BigInt, udf.BigInt}, allTypes, nil} {
			if ValidateBatch(&b, types) != nil {
				continue
			}
			if InputSize(&b) > 1<<20 {
				continue // valid, but too big to lay out on every iteration
			}
			region := AppendInput(nil, &b)
			if len(region) != InputSize(&b) {
				t.Fatalf("AppendInput wrote %d bytes, InputSize says %d", len(region), InputSize(&b))
			}
			in, err := ParseInput(region)
			if err != nil {
				t.Fatalf("valid batch does not parse back: %v", err)
			}
			if in.Rows != int(b.Rows) || len(in.Cols) != len(b.Columns) {
				t.Fatalf("parsed %d rows, %d columns; sent %d, %d", in.Rows, len(in.Cols), b.Rows, len(b.Columns))
			}
			for i, c := range b.Columns {
				if in.Cols[i].Type != c.Type {
					t.Fatalf("column %d: parsed type %s, sent %s", i+1, in.Cols[i].Type.String(), c.Type.String())
				}
				for row := range in.Rows {
					if g, w := colValue(&in.Cols[i], row), refValue(c, row); !sameValue(g, w) {
						t.Fatalf("column %d row %d = %#v, sent %#v", i+1, row, g, w)
					}
				}
			}
		}
	})
}

// FuzzValidateColumn hands ValidateBatch one column of arbitrary buffers and
// offset. Whatever it accepts, AppendInput lays out without panicking as an
// exact region of InputSize bytes that parses and holds, row by row, what a
// plain reader of the column (honouring its offset) sees.
func FuzzValidateColumn(f *testing.F) {
	for _, typ := range allTypes {
		c := sampleColumn(typ, 20, true)
		f.Add(uint8(typ), uint16(5), uint8(3), c.Validity, c.Offsets, c.Values)
		f.Add(uint8(typ), uint16(12), uint8(8), c.Validity, c.Offsets, c.Values)
		f.Add(uint8(typ), uint16(0), uint8(20), append(c.Validity, 0xff), c.Offsets, append(c.Values, 1, 2, 3))
	}
	f.Fuzz(func(t *testing.T, typ uint8, rows uint16, off uint8, validity, offsets, values []byte) {
		c := &Column{Type: udf.Type(typ), Offset: uint32(off), Validity: validity, Offsets: offsets, Values: values}
		b := &Batch{Rows: uint32(rows), Columns: []*Column{c}}
		if ValidateBatch(b, []udf.Type{c.Type}) != nil {
			return
		}
		region := AppendInput(nil, b)
		if len(region) != InputSize(b) {
			t.Fatalf("AppendInput wrote %d bytes, InputSize says %d", len(region), InputSize(b))
		}
		in, err := ParseInput(region)
		if err != nil {
			t.Fatalf("laid-out input does not parse: %v", err)
		}
		got := &in.Cols[0]
		for i := range int(rows) {
			if g, w := colValue(got, i), refValue(c, i); !sameValue(g, w) {
				t.Fatalf("row %d = %#v, the column holds %#v", i, g, w)
			}
		}
	})
}

// refValue reads row i of a validated proto column the slow, obvious way.
func refValue(c *Column, i int) any {
	e := int(c.Offset) + i
	bit := func(b []byte, k int) bool { return b[k/8]>>(k%8)&1 == 1 }
	if len(c.Validity) > 0 && !bit(c.Validity, e) {
		return nil
	}
	v := c.Values
	switch c.Type {
	case udf.Int:
		return int32(le.Uint32(v[4*e:]))
	case udf.BigInt:
		return int64(le.Uint64(v[8*e:]))
	case udf.Float:
		return math.Float32frombits(le.Uint32(v[4*e:]))
	case udf.Double:
		return math.Float64frombits(le.Uint64(v[8*e:]))
	case udf.Boolean:
		return bit(v, e)
	}
	return string(v[le.Uint32(c.Offsets[4*e:]):le.Uint32(c.Offsets[4*e+4:])])
}

// toProto and fromProto convert as the server's proto edge does: the
// fuzzer mutates the bytes a task manager sends.
func toProto(b *Batch) *udfhostv1.Batch {
	pb := &udfhostv1.Batch{Rows: b.Rows, Columns: make([]*udfhostv1.Column, len(b.Columns))}
	for i, c := range b.Columns {
		if c != nil {
			pb.Columns[i] = &udfhostv1.Column{Type: udfhostv1.SqlType(c.Type), Validity: c.Validity, Offsets: c.Offsets, Values: c.Values, Offset: c.Offset}
		}
	}
	return pb
}

func fromProto(pb *udfhostv1.Batch) Batch {
	b := Batch{Rows: pb.Rows, Columns: make([]*Column, len(pb.Columns))}
	for i, c := range pb.Columns {
		if c != nil {
			b.Columns[i] = &Column{Type: udf.Type(c.Type), Validity: c.Validity, Offsets: c.Offsets, Values: c.Values, Offset: c.Offset}
		}
	}
	return b
}
