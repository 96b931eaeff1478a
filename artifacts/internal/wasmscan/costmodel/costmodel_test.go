package main

import (
	"strings"
	"testing"

	"github.com/udfhost/udfhost/artifacts/internal/wasmscan"
)

// TestShapesCompile: every shape is a module wazero compiles, so that a
// row measures compiling, not a refusal; the in-process half of a
// measurement works. (Small sizes only: timings are the command's.)
func TestShapesCompile(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.Name, func(t *testing.T) {
			res, err := compile(s.Build(3), s.perInstance != nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Seconds <= 0 || res.PeakHeap <= 0 || res.CacheBytes <= 0 {
				t.Fatalf("%+v", res)
			}
		})
	}
}

// TestLargestIsAtTheLimit: the search lands on the largest module the
// scan accepts, and the next size up is refused naming a limit.
func TestLargestIsAtTheLimit(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.Name, func(t *testing.T) {
			if strings.HasSuffix(s.Name, "filling an artifact") {
				t.Skip("scanning 100 MB modules takes seconds each: the command's job")
			}
			n, limit, err := largest(s)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := wasmscan.Scan(s.Build(n)); err != nil {
				t.Fatalf("n=%d refused: %v", n, err)
			}
			if _, err := wasmscan.Scan(s.Build(n + 1)); err == nil && !strings.Contains(limit, "artifact") {
				t.Fatalf("n=%d: the next size up is accepted (%q)", n, limit)
			}
		})
	}
}
