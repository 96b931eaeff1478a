package main

import "testing"

func TestKeyPathIsOneSegment(t *testing.T) {
	for key, want := range map[string]string{
		"alice":    "/alice",
		"a/b":      "/a%2Fb",
		"../admin": "/..%2Fadmin",
		"x?y#z":    "/x%3Fy%23z",
		"grüße":    "/gr%C3%BC%C3%9Fe",
	} {
		if got := keyPath(key); got != want {
			t.Errorf("keyPath(%q) = %q, want %q", key, got, want)
		}
	}
}
