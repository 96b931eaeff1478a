package s3store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
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

func TestPresignArgs(t *testing.T) {
	s, err := New(context.Background(), Options{
		Bucket: "b", Region: "us-east-1", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	good := strings.Repeat("ab", 32)
	tests := []struct {
		name   string
		size   int64
		sha    string
		expiry time.Duration
		ok     bool
	}{
		{"valid", 10, good, time.Minute, true},
		{"short digest", 10, good[:62], time.Minute, false},
		{"not hex", 10, strings.Repeat("zz", 32), time.Minute, false},
		{"negative size", -1, good, time.Minute, false},
		{"no expiry", 10, good, 0, false},
		{"expiry over a week", 10, good, 8 * 24 * time.Hour, false},
	}
	for _, tt := range tests {
		_, _, err := s.PresignPut(ctx, "uploads/x", tt.size, tt.sha, tt.expiry)
		if (err == nil) != tt.ok {
			t.Errorf("%s: PresignPut error = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	if _, err := s.PresignGet(ctx, "uploads/x", -time.Second); err == nil {
		t.Error("PresignGet with a negative expiry succeeded")
	}
}
