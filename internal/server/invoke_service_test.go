package server

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/abi/abipb"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// TestResultSize: a result over the pool's batch limit fails the batch as
// bad output (ABORTED, class bad_output, counted toward quarantine), naming
// the size and the limit.
func TestResultSize(t *testing.T) {
	pool := &policies.Pool{MaxBatchBytes: 64 << 20}
	if err := checkResultSize(64<<20, pool); err != nil {
		t.Fatalf("a result at the limit: %v", err)
	}
	err := checkResultSize(200<<20, pool)
	if err == nil {
		t.Fatal("a 200 MiB result passed a 64 MiB limit")
	}
	st := status.Convert(toStatus(err))
	if st.Code() != codes.Aborted || !strings.Contains(st.Message(), "result of 209715200 bytes exceeds the pool's batch limit of 67108864 bytes") {
		t.Errorf("status %s %q", st.Code(), st.Message())
	}
	if c := violationClass(err); c != "bad_output" {
		t.Errorf("class %q, want bad_output", c)
	}
	if !quarantinable(err) {
		t.Error("does not count toward quarantine")
	}
	if err := checkResultSize(1<<30, &policies.Pool{}); err != nil {
		t.Errorf("no limit set: %v", err)
	}
}

// TestBatchSize: a request over the pool's batch limit is refused as
// INVALID_ARGUMENT before it reaches a worker, and the limit counts what
// the rows need: Arrow's padding does not count against it.
func TestBatchSize(t *testing.T) {
	exact := &udfhostv1.Batch{Rows: 4, Columns: []*udfhostv1.Column{
		{Type: udfhostv1.SqlType_TYPE_BIGINT, Validity: make([]byte, 1), Values: make([]byte, 32)},
		{Type: udfhostv1.SqlType_TYPE_VARCHAR, Offsets: make([]byte, 20), Values: make([]byte, 0)},
	}}
	padded := &udfhostv1.Batch{Rows: 4, Columns: []*udfhostv1.Column{
		{Type: udfhostv1.SqlType_TYPE_BIGINT, Validity: make([]byte, 64), Values: make([]byte, 64)},
		{Type: udfhostv1.SqlType_TYPE_VARCHAR, Offsets: make([]byte, 64), Values: make([]byte, 64)},
	}}
	n := abi.InputSize(abipb.FromBatch(exact))
	if m := abi.InputSize(abipb.FromBatch(padded)); m != n {
		t.Fatalf("padded batch counts %d bytes, exact one %d: padding must not count", m, n)
	}
	if err := checkBatchSize(n, &policies.Pool{MaxBatchBytes: n}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	err := checkBatchSize(n, &policies.Pool{MaxBatchBytes: n - 1})
	want := fmt.Sprintf("batch of %d bytes exceeds the pool's limit of %d bytes", n, n-1)
	if st := status.Convert(toStatus(err)); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), want) {
		t.Errorf("over the limit: %v", err)
	}
}
