package abi

import (
	"strings"
	"testing"

	"github.com/udfhost/udfhost/internal/udf"
)

// TestTypeNameReadsOnce: messages put "type" before a type's name, so an
// unset or unknown type must not be named "type N" ("type type 0, want
// BIGINT").
func TestTypeNameReadsOnce(t *testing.T) {
	tests := []struct {
		col  udf.Type
		want string
	}{
		{0, "column 1: type unset (TYPE_UNSPECIFIED), want BIGINT"},
		{42, "column 1: type unknown (SqlType 42), want BIGINT"},
	}
	for _, tc := range tests {
		b := &Batch{Rows: 1, Columns: []*Column{{Type: tc.col, Values: make([]byte, 8)}}}
		err := ValidateBatch(b, []udf.Type{udf.BigInt})
		if err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %q", err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "type type") {
			t.Errorf("doubled word in %q", err)
		}
	}
}
