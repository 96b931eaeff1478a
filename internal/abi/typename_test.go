package abi

import (
	"strings"
	"testing"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// TestTypeNameReadsOnce: messages put "type" before a type's name, so an
// unset or unknown type must not be named "type N" ("type type 0, want
// BIGINT").
func TestTypeNameReadsOnce(t *testing.T) {
	tests := []struct {
		col  udfhostv1.SqlType
		want string
	}{
		{0, "column 1: type unset (TYPE_UNSPECIFIED), want BIGINT"},
		{42, "column 1: type unknown (SqlType 42), want BIGINT"},
	}
	for _, tc := range tests {
		b := &udfhostv1.Batch{Rows: 1, Columns: []*udfhostv1.Column{{Type: tc.col, Values: make([]byte, 8)}}}
		err := ValidateBatch(b, []udfhostv1.SqlType{udfhostv1.SqlType_TYPE_BIGINT})
		if err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %q", err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "type type") {
			t.Errorf("doubled word in %q", err)
		}
	}
}
