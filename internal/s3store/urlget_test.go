package s3store

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
)

// TestDownloadURL fetches through a pre-signed GET alone: an object of
// several parts (ranged GETs with the If-Match the transfer library adds,
// unsigned), an absent key, an expired URL and a tampered one.
func TestDownloadURL(t *testing.T) {
	g := startGateway(t, "dl")
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), (12<<20)/16+7) // past two 5 MiB parts
	if _, err := g.store.PutIfAbsent(ctx, "artifacts/big", big); err != nil {
		t.Fatal(err)
	}
	url, err := g.store.PresignGet(ctx, "artifacts/big", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	buf := manager.NewWriteAtBuffer(nil)
	n, err := DownloadURL(ctx, url, buf, int64(len(big)))
	if err != nil || n != int64(len(big)) || !bytes.Equal(buf.Bytes(), big) {
		t.Fatalf("DownloadURL = %d, %v; want %d bytes, equal", n, err, len(big))
	}

	absent, err := g.store.PresignGet(ctx, "artifacts/none", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DownloadURL(ctx, absent, manager.NewWriteAtBuffer(nil), 1<<20); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent key: %v, want ErrNotFound", err)
	}

	short, err := g.store.PresignGet(ctx, "artifacts/big", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	var se *HTTPStatusError
	if _, err := DownloadURL(ctx, short, manager.NewWriteAtBuffer(nil), int64(len(big))); !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Errorf("expired URL: %v, want 403", err)
	}
	tampered := strings.Replace(url, "X-Amz-Expires=60", "X-Amz-Expires=600", 1)
	if tampered == url {
		t.Fatalf("URL %q has no X-Amz-Expires=60", url)
	}
	if _, err := DownloadURL(ctx, tampered, manager.NewWriteAtBuffer(nil), int64(len(big))); !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Errorf("tampered URL: %v, want 403", err)
	} else if strings.Contains(err.Error(), "X-Amz-Signature") {
		t.Errorf("error shows the URL's signature: %v", err)
	}
}
