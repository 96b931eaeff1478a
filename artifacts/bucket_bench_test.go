package artifacts

import (
	"testing"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
)

// BenchmarkBucketSync is a Sync that finds nothing changed among 100
// artifacts (two listings, no record read), against versitygw on
// loopback.
func BenchmarkBucketSync(b *testing.B) {
	e := newBucketEnv(b)
	a := e.host("h-a")
	for i := 0; i < 100; i++ {
		e.upload(a, wasmtest.Functions(i+1, 1, wasmtest.Body()))
	}
	h := e.host("h-b")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.Sync(e.ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBucketCommit is CreateUpload, a plain PUT and Commit of a
// small module (validated in process), against versitygw on loopback.
func BenchmarkBucketCommit(b *testing.B) {
	e := newBucketEnv(b)
	a := e.host("h-a")
	for i := 0; i < b.N; i++ {
		e.upload(a, wasmtest.Functions(i+1, 1, wasmtest.Body()))
	}
}
