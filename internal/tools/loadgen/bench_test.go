package loadgen

import (
	"context"
	"fmt"
	"testing"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// BenchmarkEcho runs the engine against the echo server in-process, one
// batch per iteration, so the client and the ceiling can be profiled
// (go test -bench Echo -cpuprofile).
func BenchmarkEcho(b *testing.B) {
	sigs := []struct {
		name string
		args []udfhostv1.SqlType
		res  udfhostv1.SqlType
	}{
		{"bigint3", []udfhostv1.SqlType{tBigint, tBigint, tBigint}, tBigint},
		{"varchar", []udfhostv1.SqlType{tVarchar}, tVarchar},
	}
	for _, sig := range sigs {
		for _, unary := range []bool{false, true} {
			for _, streams := range []int{1, 4, 16} {
				for _, window := range []int{1, 4} {
					mode := "stream"
					if unary {
						mode = "unary"
					}
					b.Run(fmt.Sprintf("%s/%s/s%d/w%d", sig.name, mode, streams, window), func(b *testing.B) {
						res, err := Run(context.Background(), Config{
							Echo: true, Function: "echo", Args: sig.args, Result: sig.res,
							Rows: int64(b.N) * 1024, Streams: streams, Window: window, Unary: unary,
						})
						if err != nil || res.Errors != 0 {
							b.Fatalf("Run: %v, %+v", err, res)
						}
						b.ReportMetric(res.RowsPerSec/1e6, "Mrows/s")
						b.ReportMetric(res.P99Ms, "p99-ms")
					})
				}
			}
		}
	}
}
