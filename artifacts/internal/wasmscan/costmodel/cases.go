package main

import (
	"errors"
	"fmt"
	"sort"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/artifacts/internal/wasmscan"
	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
)

// The budgets a module the scan accepts must compile within: those of the
// jailed compile-only worker (internal/server/workers.go, precompile), and
// what a worker has besides its guests' linear memories for the
// per-instance allocations (sandbox/host.go, runtimeOverhead).
const (
	compileMemory  = 1 << 30 // cgroup memory limit
	compileSeconds = 120     // StartTimeout
	compileCores   = 1       // cgroup CPU quota
	instanceMemory = 256 << 20
)

// shape is a row of the table: one of wasmtest's shapes, measured at the
// largest size the scan accepts.
type shape struct {
	wasmtest.Shape
	// perInstance, if set, models what each instance allocates outside its
	// linear memory (scan.go's comments on the per-instance limits); the
	// module is instantiated once after compiling.
	perInstance func(n int) int64
}

// shapes are the rows, in order.
func shapes() []shape {
	var out []shape
	for _, s := range wasmtest.Shapes() {
		row := shape{Shape: s}
		switch s.Name {
		case "table elements":
			row.perInstance = func(n int) int64 { return 8 * int64(n) }
		case "element segment":
			row.perInstance = func(n int) int64 { return 40 * int64(n) }
		case "globals":
			row.perInstance = func(n int) int64 { return 90 * int64(n) }
		}
		out = append(out, row)
	}
	return out
}

// errNoLimit means a shape grew to the largest artifact without meeting a
// limit of the scan.
var errNoLimit = errors.New("no limit of the scan met up to the largest artifact")

// largest finds the largest n for which the scan accepts s.Build(n) and
// the module is no larger than an artifact may be, by doubling then
// bisecting (the scan's verdict is monotonic in n for every shape). It
// returns the refusal of n+1: the limit the module is at.
func largest(s shape) (n int, limit string, err error) {
	// Sizes grow at least as fast as their first step: past the
	// artifact size by that estimate, a module is too large unbuilt.
	s1, s2 := len(s.Build(1)), len(s.Build(2))
	tooLarge := func(n int) bool { return s1+(n-1)*(s2-s1) > artifacts.DefaultMaxSize }
	accepted := func(n int) (bool, string) {
		if tooLarge(n) {
			return false, fmt.Sprintf("more than %d bytes, the largest an artifact may have", artifacts.DefaultMaxSize)
		}
		m := s.Build(n)
		if len(m) > artifacts.DefaultMaxSize {
			return false, fmt.Sprintf("%d bytes, more than an artifact may have (%d)", len(m), artifacts.DefaultMaxSize)
		}
		if _, err := wasmscan.Scan(m); err != nil {
			return false, err.Error()
		}
		return true, ""
	}
	if ok, why := accepted(1); !ok {
		return 0, "", fmt.Errorf("%s: refused at n = 1: %s", s.Name, why)
	}
	lo, hi := 1, 2
	for {
		if ok, _ := accepted(hi); !ok {
			break
		}
		if lo, hi = hi, 2*hi; hi > 1<<30 {
			return 0, "", fmt.Errorf("%s: %w", s.Name, errNoLimit)
		}
	}
	// Where the artifact size is the limit, the answer is just below
	// where the estimate passes it (the estimate leaves out that counts'
	// and sizes' encodings grow).
	if first := sort.Search(hi, tooLarge); first > lo+1 && first < hi {
		hi = first
		c := first - 1
		for c > lo {
			size := len(s.Build(c))
			if size <= artifacts.DefaultMaxSize {
				break
			}
			hi, c = c, c-(size-artifacts.DefaultMaxSize)/max(s2-s1, 1)-1
		}
		if ok, _ := accepted(c); ok && c > lo {
			lo = c
		} else if c > lo {
			hi = c
		}
	}
	for hi-lo > 1 {
		if mid := lo + (hi-lo)/2; func() bool { ok, _ := accepted(mid); return ok }() {
			lo = mid
		} else {
			hi = mid
		}
	}
	_, limit = accepted(lo + 1)
	return lo, limit, nil
}
