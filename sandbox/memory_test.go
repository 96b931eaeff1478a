package sandbox

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/udfhost/udfhost/sandbox/internal/testmod"
)

// growWAT's grow(step, _) grows its memory by step pages until
// memory.grow answers -1, then by single pages until it answers -1 again,
// writing to every 4 KiB of each new page (so the kernel really backs it),
// and returns the pages it reached: the limit, exactly, if memory.grow
// answers -1 only past it.
const growWAT = `(module
  (memory 1)
  (func $touch (param $from i32) (param $to i32)
    (local $a i32)
    (local.set $a (i32.mul (local.get $from) (i32.const 65536)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $a) (i32.mul (local.get $to) (i32.const 65536))))
      (i64.store (local.get $a) (i64.const 0x5a5a5a5a5a5a5a5a))
      (local.set $a (i32.add (local.get $a) (i32.const 4096)))
      (br $l))))
  (func $growBy (param $step i32)
    (local $old i32)
    (block $done (loop $l
      (local.set $old (memory.grow (local.get $step)))
      (br_if $done (i32.eq (local.get $old) (i32.const -1)))
      (call $touch (local.get $old) (i32.add (local.get $old) (local.get $step)))
      (br $l))))
  (func (export "grow") (param i64 i64) (result i64)
    (call $growBy (i32.wrap_i64 (local.get 0)))
    (call $growBy (i32.const 1))
    (i64.extend_i32_u (memory.size))))`

// TestGuestGrowsToItsLimitUnharmed: guests that grow their memory to the
// pool's limit, in steps of 1, 64 or 1000 pages, with every instance of
// the worker doing so at once, are all answered — memory.grow says -1
// exactly past the limit — and the worker, in its real cgroup sized by
// PodLimits for the default pool (4096 pages, 2 instances), is not
// killed.
func TestGuestGrowsToItsLimitUnharmed(t *testing.T) {
	if !canJail() {
		t.Skip("the worker's cgroup needs root; make test runs as root")
	}
	const pages, instances = 4096, 2 // policies.Default()'s pool
	wasm := testmod.WAT(t, growWAT)
	for _, step := range []int64{1, 64, 1000} {
		t.Run(fmt.Sprintf("step=%d", step), func(t *testing.T) {
			cfg := testConfig(t, wasm)
			cfg.MemoryLimitPages, cfg.MaxInstances = pages, instances
			cfg.Limits = PodLimits(pages, instances)
			w := startWorker(t, cfg)
			var wg sync.WaitGroup
			errs := make([]error, instances)
			got := make([][]int64, instances)
			for i := range instances {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i], errs[i] = call(w, "grow", time.Minute, []int64{step}, []int64{0})
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					var ce *CallError
					if errors.As(err, &ce) && ce.Violation != nil {
						t.Errorf("instance %d: %v (%+v)", i, err, *ce.Violation)
					} else {
						t.Errorf("instance %d: %v", i, err)
					}
					continue
				}
				if got[i][0] != pages {
					t.Errorf("instance %d reached %d pages, want memory.grow to fail exactly past %d", i, got[i][0], pages)
				}
			}
			if w.Dead() {
				t.Fatalf("worker gone after its guests stayed within their limits: %v", w.Err())
			}
			// The guests really held their memory (the kernel backed it
			// and charged the cgroup), so the test was at the edge.
			if peak, guests := w.group.MemoryPeak(), guestMemory(pages, instances); peak != 0 {
				t.Logf("cgroup memory peak %d MiB of %d MiB (guests %d MiB)", peak>>20, cfg.Limits.MemoryBytes>>20, guests>>20)
				if peak < guests {
					t.Errorf("cgroup peak %d MiB is less than the guests' %d MiB: their memory was not touched", peak>>20, guests>>20)
				}
			}
		})
	}
}
