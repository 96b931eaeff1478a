package sandbox

import (
	"context"
	"testing"
	"time"

	"github.com/udfhost/udfhost/sandbox/internal/testmod"
)

// BenchmarkLoadGoGuest is what a new pod waits for when a spare process
// is ready: handing a 2 MB Go guest, its compilation cache precompiled, to
// a spawned worker until an instance is warm; jailed vs without the jail.
func BenchmarkLoadGoGuest(b *testing.B) {
	wasm := testmod.GoGuest(b, "upper")
	dir := b.TempDir()
	cfg := testConfig(b, wasm)
	cfg.CacheDir, cfg.MemoryLimitPages = dir, 4096
	if err := Precompile(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	for _, jailed := range []bool{true, false} {
		name := "jailed"
		c := cfg
		if !jailed {
			name = "unjailed"
			c = unjailed(c)
		}
		b.Run(name, func(b *testing.B) {
			if jailed && !canJail() {
				b.Skip("the jail needs root")
			}
			var load time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				w, err := spawn(c)
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond) // as a spare: started ahead of need
				b.StartTimer()
				if err := w.assign(context.Background(), c); err != nil {
					b.Fatal(err)
				}
				load += w.LoadDuration()
				b.StopTimer()
				w.Close(context.Background())
				b.StartTimer()
			}
			b.ReportMetric(float64(load.Microseconds())/1000/float64(b.N), "load-ms")
		})
	}
}
