package server

import (
	"slices"
	"sync"
	"testing"
)

// TestKeyLocksFIFO: waiters for one key get it in arrival order, one at a
// time; other keys are not held up.
func TestKeyLocksFIFO(t *testing.T) {
	var k keyLocks
	unlock := k.lock("d")
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := k.lock("d")
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			u()
		}()
		waitFor(t, func() bool { return k.waiting("d") == i+1 }, "waiter queued")
	}
	k.lock("other")() // another key is free
	unlock()
	wg.Wait()
	if !slices.Equal(order, []int{0, 1, 2, 3, 4}) {
		t.Errorf("order %v, want arrival order", order)
	}
	if k.waiting("d") != 0 || len(k.locks) != 0 {
		t.Errorf("locks left: %v", k.locks)
	}
}
