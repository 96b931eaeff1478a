package main

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestErrorLine: the code is printed in words once, whether or not the
// message already starts with them.
func TestErrorLine(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{status.Error(codes.InvalidArgument, "digest is malformed"), "invalid argument: digest is malformed"},
		{status.Error(codes.InvalidArgument, "invalid argument: digest is malformed"), "invalid argument: digest is malformed"},
		{status.Error(codes.NotFound, `function not found: "nope"`), `not found: function not found: "nope"`},
		{status.Error(codes.ResourceExhausted, "server busy:\nretry"), "resource exhausted: server busy: retry"},
		{errors.New("plain\nerror"), "plain error"},
		{status.Error(codes.Unavailable, `connection error: desc = "error reading server preface: EOF"`),
			`unavailable: connection error: desc = "error reading server preface: EOF" (is the server serving TLS? connect with --tls-ca)`},
	}
	for _, tc := range tests {
		if got := errorLine(tc.err); got != tc.want {
			t.Errorf("errorLine(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
