package egress

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/udfhost/udfhost/audit"
)

type discard struct{}

func (discard) Record(context.Context, audit.Event) error { return nil }

// BenchmarkEgress compares a GET through the broker with a plain
// http.Client to the same loopback server: the broker's overhead (checks,
// header filtering, the audit call; "audited" adds a real audit log's two
// fsynced records per request).
func BenchmarkEgress(b *testing.B) {
	srv := startServer(b, "127.0.0.1:0", nil, nil)
	b.Run("direct", func(b *testing.B) {
		cl := &http.Client{}
		url := "http://" + srv.addr.String() + "/"
		for b.Loop() {
			resp, err := cl.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	c := oneConn(b, srv.port())
	run := func(b *testing.B, a Auditor) {
		br := New(Config{Audit: a})
		defer br.Close()
		req := get(c)
		for b.Loop() {
			if _, err := br.Do(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("broker", func(b *testing.B) { run(b, discard{}) })
	b.Run("broker-audited", func(b *testing.B) {
		l, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"))
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		run(b, l)
	})
}
