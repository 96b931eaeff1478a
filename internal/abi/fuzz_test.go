package abi

import (
	"errors"
	"testing"
	"unicode/utf8"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// seedInputs returns valid input regions of every type plus a few broken ones.
func seedInputs() [][]byte {
	var seeds [][]byte
	for _, rows := range []int{0, 1, 9} {
		b := &udfhostv1.Batch{Rows: uint32(rows)}
		for _, typ := range allTypes {
			b.Columns = append(b.Columns, sampleColumn(typ, rows, true))
		}
		seeds = append(seeds, AppendInput(nil, b))
		for _, typ := range allTypes {
			one := &udfhostv1.Batch{Rows: uint32(rows), Columns: []*udfhostv1.Column{sampleColumn(typ, rows, rows > 1)}}
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
		b := &udfhostv1.Batch{Rows: uint32(in.Rows)}
		types := make([]udfhostv1.Type, len(in.Cols))
		for i := range in.Cols {
			c := &in.Cols[i]
			for row := range in.Rows {
				_ = colValue(c, row)
			}
			types[i] = c.Type
			b.Columns = append(b.Columns, &udfhostv1.Column{Type: c.Type, Validity: c.Validity, Offsets: c.Offsets, Values: c.Values})
		}
		if err := ValidateBatch(b, types); err != nil {
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
func seedOutputs() (regions [][]byte, rows []int, types []udfhostv1.Type) {
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
	f.Add([]byte{}, uint32(0), uint32(0), uint16(0), uint8(tInt))
	f.Add(make([]byte, 64), uint32(8), uint32(0xfffffff0), uint16(1), uint8(tBool))
	f.Fuzz(func(t *testing.T, mem []byte, ptr, n uint32, rows uint16, typ uint8) {
		out, err := CopyOutput(nil, mem, ptr, n, int(rows), udfhostv1.Type(typ))
		if err != nil {
			if !errors.Is(err, ErrBadOutput) && !errors.Is(err, ErrBatchFailed) {
				t.Fatalf("error wraps neither ErrBadOutput nor ErrBatchFailed: %v", err)
			}
			return
		}
		// Whatever CopyOutput accepts, DecodeOutput accepts, and the column
		// is a valid batch column.
		col, errs, err := DecodeOutput(out, int(rows), udfhostv1.Type(typ))
		if err != nil {
			t.Fatalf("DecodeOutput rejects CopyOutput's region: %v", err)
		}
		b := &udfhostv1.Batch{Rows: uint32(rows), Columns: []*udfhostv1.Column{col}}
		if err := ValidateBatch(b, []udfhostv1.Type{udfhostv1.Type(typ)}); err != nil {
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
	b.Reset(tDouble, 10)
	b.SetFloat64(3, 1.5)
	b.SetError(4, "four")
	f.Add(b.AppendTo(nil), uint16(10), uint8(tDouble))
	f.Fuzz(func(t *testing.T, buf []byte, rows uint16, typ uint8) {
		col, errs, err := DecodeOutput(buf, int(rows), udfhostv1.Type(typ))
		if err != nil {
			if !errors.Is(err, ErrBadOutput) {
				t.Fatalf("error does not wrap ErrBadOutput: %v", err)
			}
			return
		}
		b := &udfhostv1.Batch{Rows: uint32(rows), Columns: []*udfhostv1.Column{col}}
		if err := ValidateBatch(b, []udfhostv1.Type{udfhostv1.Type(typ)}); err != nil {
			t.Fatalf("decoded column is invalid: %v", err)
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
