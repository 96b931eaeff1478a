package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/tools/loadgen"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// checkAffine verifies every row of a response against a*b+c computed
// natively, with NULL in, NULL out.
func checkAffine(req *udfhostv1.Batch, resp *udfhostv1.InvokeResponse) error {
	if resp.Error != nil {
		return fmt.Errorf("batch failed: %s", resp.Error.Message)
	}
	if resp.Rows != req.Rows || len(resp.Errors) != 0 {
		return fmt.Errorf("rows %d (want %d), %d row errors", resp.Rows, req.Rows, len(resp.Errors))
	}
	valid := func(c *udfhostv1.Column, r int) bool {
		return len(c.Validity) == 0 || c.Validity[r/8]&(1<<(r%8)) != 0
	}
	val := func(c *udfhostv1.Column, r int) int64 { return int64(binary.LittleEndian.Uint64(c.Values[8*r:])) }
	a, b, c, out := req.Columns[0], req.Columns[1], req.Columns[2], resp.Result
	for r := 0; r < int(req.Rows); r++ {
		null := !valid(a, r) || !valid(b, r) || !valid(c, r)
		if valid(out, r) == null {
			return fmt.Errorf("row %d: result valid=%v, arguments null=%v", r, valid(out, r), null)
		}
		if !null {
			if want := val(a, r)*val(b, r) + val(c, r); val(out, r) != want {
				return fmt.Errorf("row %d: got %d, want %d", r, val(out, r), want)
			}
		}
	}
	return nil
}

func TestCorrectUnderLoad(t *testing.T) {
	s := startServer(t)
	s.createFunction("affine_batch", s.upload("go-affine"), "affine", "(BIGINT, BIGINT, BIGINT) -> BIGINT")
	s.createFunction("affine_direct", s.upload("affine_direct"), "affine", "(BIGINT, BIGINT, BIGINT) -> BIGINT")
	const streams, batches, rows = 16, 200, 256
	for _, fn := range []string{"affine_batch", "affine_direct"} {
		t.Run(fn, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			big := udfhostv1.SqlType_TYPE_BIGINT
			res, err := loadgen.Run(ctx, loadgen.Config{
				Addr: s.addr, Token: s.token, Function: fn,
				Args: []udfhostv1.SqlType{big, big, big}, Result: big,
				Streams: streams, Window: 2, BatchRows: rows, Rows: streams * batches * rows,
				Nulls: 0.1, Seed: 42, Warmup: 0, Check: checkAffine,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 || res.Batches != streams*batches || res.Rows != streams*batches*rows {
				t.Fatalf("%d batches, %d rows, %d errors (first: %s); want %d batches, no errors",
					res.Batches, res.Rows, res.Errors, res.FirstError, streams*batches)
			}
		})
	}
}
