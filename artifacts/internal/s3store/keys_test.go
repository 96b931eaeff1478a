package s3store

import (
	"context"
	"testing"
)

func TestKeys(t *testing.T) {
	tests := []struct {
		prefix, key, want string
	}{
		{"", "uploads/u1", "uploads/u1"},
		{"a/b", "uploads/u1", "a/b/uploads/u1"},
		{"/a/b/", "uploads/u1", "a/b/uploads/u1"},
	}
	for _, tt := range tests {
		s, err := New(context.Background(), Options{Bucket: "b", Prefix: tt.prefix, Region: "us-east-1"})
		if err != nil {
			t.Fatal(err)
		}
		if got := *s.key(tt.key); got != tt.want {
			t.Errorf("prefix %q: key(%q) = %q, want %q", tt.prefix, tt.key, got, tt.want)
		}
	}
	if _, err := New(context.Background(), Options{}); err == nil {
		t.Error("New without a bucket succeeded")
	}
}

func TestEscapeKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a/b/c", "a/b/c"},
		{"p/uploads/u 1", "p/uploads/u%201"},
		{"x/a+b?c", "x/a+b%3Fc"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := escapeKey(tt.in); got != tt.want {
			t.Errorf("escapeKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
