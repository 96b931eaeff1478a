package jsonrows

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/abi/abipb"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// TestRoundTrip builds a batch from JSON, checks it is a valid batch for
// its types, and reads each column back as the JSON values it came from.
func TestRoundTrip(t *testing.T) {
	types := []udfhostv1.SqlType{
		udfhostv1.SqlType_TYPE_INT, udfhostv1.SqlType_TYPE_BIGINT, udfhostv1.SqlType_TYPE_FLOAT, udfhostv1.SqlType_TYPE_DOUBLE,
		udfhostv1.SqlType_TYPE_BOOLEAN, udfhostv1.SqlType_TYPE_VARCHAR, udfhostv1.SqlType_TYPE_BYTES,
	}
	rows := []string{
		`[1, 9223372036854775807, 1.5, "NaN", true, "héllo", "AAEC"]`,
		`[null, null, null, null, null, null, null]`,
		`[-2147483648, -1, -0.25, "-Infinity", false, "", ""]`,
	}
	b := NewBuilder(types)
	for _, r := range rows {
		if err := b.AddLine([]byte(r)); err != nil {
			t.Fatalf("AddLine(%s): %v", r, err)
		}
	}
	batch := b.Batch()
	if err := abi.ValidateBatch(abipb.FromBatch(batch), abipb.FromTypes(types)); err != nil {
		t.Fatalf("built batch is invalid: %v", err)
	}
	for c := range types {
		resp := &udfhostv1.InvokeResponse{Rows: batch.Rows, Result: batch.Columns[c]}
		got, _ := json.Marshal(Values(resp))
		var want []any
		for _, r := range rows {
			var vals []any
			dec := json.NewDecoder(strings.NewReader(r))
			dec.UseNumber() // keep int64 exact
			dec.Decode(&vals)
			want = append(want, vals[c])
		}
		wantJSON, _ := json.Marshal(want)
		if string(got) != string(wantJSON) {
			t.Errorf("column %d: got %s, want %s", c, got, wantJSON)
		}
	}
}

func TestAddLineRejectsAndLeavesNothing(t *testing.T) {
	types := []udfhostv1.SqlType{udfhostv1.SqlType_TYPE_INT, udfhostv1.SqlType_TYPE_VARCHAR}
	tests := []struct{ line, want string }{
		{`[1]`, "row has 1 values, function takes 2"},
		{`{"a": 1}`, "not a JSON array"},
		{`[2147483648, "x"]`, "is not a INT"},
		{`[1.5, "x"]`, "is not a INT"},
		{`[1, 2]`, "want a string for VARCHAR"},
	}
	b := NewBuilder(types)
	for _, tc := range tests {
		if err := b.AddLine([]byte(tc.line)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddLine(%s) = %v, want error containing %q", tc.line, err, tc.want)
		}
	}
	if b.Rows() != 0 {
		t.Fatalf("rejected rows were added: %d", b.Rows())
	}
	if err := b.AddLine([]byte(`[7, "ok"]`)); err != nil {
		t.Fatal(err)
	}
	if err := abi.ValidateBatch(abipb.FromBatch(b.Batch()), abipb.FromTypes(types)); err != nil {
		t.Errorf("batch after rejections is invalid: %v", err)
	}
}

func TestRowErrorsOverrideValues(t *testing.T) {
	resp := &udfhostv1.InvokeResponse{
		Rows:   2,
		Result: &udfhostv1.Column{Type: udfhostv1.SqlType_TYPE_INT, Validity: []byte{0b01}, Values: make([]byte, 8)},
		Errors: []*udfhostv1.RowError{{Row: 1, Message: "boom"}},
	}
	v := Values(resp)
	if v[0] != int32(0) || v[1] != (RowError{Error: "boom"}) {
		t.Errorf("Values = %#v", v)
	}
}

// TestValuesHonourOffset reads columns whose first row is at an element
// offset, as an Arrow slice has: the rows before it are not results.
func TestValuesHonourOffset(t *testing.T) {
	types := []udfhostv1.SqlType{
		udfhostv1.SqlType_TYPE_INT, udfhostv1.SqlType_TYPE_BIGINT, udfhostv1.SqlType_TYPE_FLOAT, udfhostv1.SqlType_TYPE_DOUBLE,
		udfhostv1.SqlType_TYPE_BOOLEAN, udfhostv1.SqlType_TYPE_VARCHAR, udfhostv1.SqlType_TYPE_BYTES,
	}
	junk := `[7, 7, 7, 7, true, "junk", "AAAA"]`
	rows := []string{
		`[null, null, null, null, null, null, null]`,
		`[1, 2, 1.5, 2.5, false, "héllo", "AAEC"]`,
		`[3, 4, -1, -2, true, "", ""]`,
	}
	for _, skip := range []int{1, 3, 8, 9} {
		b := NewBuilder(types)
		for range skip {
			if err := b.AddLine([]byte(junk)); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range rows {
			if err := b.AddLine([]byte(r)); err != nil {
				t.Fatal(err)
			}
		}
		batch := b.Batch()
		for c := range types {
			col := batch.Columns[c]
			col.Offset = uint32(skip)
			got, _ := json.Marshal(Values(&udfhostv1.InvokeResponse{Rows: uint32(len(rows)), Result: col}))
			var want []any
			for _, r := range rows {
				var vals []any
				dec := json.NewDecoder(strings.NewReader(r))
				dec.UseNumber()
				dec.Decode(&vals)
				want = append(want, vals[c])
			}
			wantJSON, _ := json.Marshal(want)
			if string(got) != string(wantJSON) {
				t.Errorf("skip %d column %d: got %s, want %s", skip, c, got, wantJSON)
			}
		}
	}
}
