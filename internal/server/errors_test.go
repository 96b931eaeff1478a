package server

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/functions"
)

// TestStatusMessagesReadOnce: a sentinel whose text only repeats the code
// is dropped from the message, so "code: message" reads each word once;
// other messages are left alone.
func TestStatusMessagesReadOnce(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{fmt.Errorf("%w: digest %q is not sha256:<64 lower-case hex digits>", artifacts.ErrInvalidArgument, "x"), codes.InvalidArgument, `digest "x" is not sha256:<64 lower-case hex digits>`},
		{fmt.Errorf("%w: batch of 9 rows exceeds the pool's limit of 8", errInvalid), codes.InvalidArgument, "batch of 9 rows exceeds the pool's limit of 8"},
		{fmt.Errorf("%w: artifact art-0000000000000000", artifacts.ErrNotFound), codes.NotFound, "artifact art-0000000000000000"},
		{fmt.Errorf("%w: %q", functions.ErrNotFound, "nope"), codes.NotFound, `function not found: "nope"`},
		{fmt.Errorf("%w: kind", artifacts.ErrInvalidModule), codes.InvalidArgument, "invalid module: kind"},
		{artifacts.ErrInvalidArgument, codes.InvalidArgument, "invalid argument"},
		{fmt.Errorf("%w: store function f: function store s3://b/p/: connection refused", functions.ErrUnavailable), codes.Unavailable, "function store unavailable: store function f: function store s3://b/p/: connection refused"},
		{fmt.Errorf("%w: commit up-1: artifact store s3://b/p/: %w", artifacts.ErrUnavailable, context.DeadlineExceeded), codes.Unavailable, "artifact store unavailable: commit up-1: artifact store s3://b/p/: context deadline exceeded"},
		{fmt.Errorf("%w: \"f\" was replaced", functions.ErrChanged), codes.Aborted, `function changed by another host: "f" was replaced`},
	}
	for _, tc := range tests {
		st := status.Convert(toStatus(tc.err))
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("toStatus(%q) = %s %q, want %s %q", tc.err, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
}
