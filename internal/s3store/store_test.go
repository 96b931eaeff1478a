package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"

	"github.com/udfhost/udfhost/internal/s3store/s3test"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// put is s3test.Put.
func put(t *testing.T, url string, headers map[string]string, body []byte) (int, string) {
	t.Helper()
	return s3test.Put(t, url, headers, body)
}

func wantAbsent(t *testing.T, s *Store, key string) {
	t.Helper()
	if _, _, err := s.Head(context.Background(), key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Head(%s) = %v, want ErrNotFound", key, err)
	}
}

func TestPresignPutHeaders(t *testing.T) {
	g := startGateway(t, "p")
	body := []byte("module bytes")
	_, h, err := g.store.PresignPut(context.Background(), "uploads/h", int64(len(body)), digest(body), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Content-Length", "X-Amz-Checksum-Sha256", "If-None-Match"} {
		if h[k] == "" {
			t.Errorf("headers %v lack %s", h, k)
		}
	}
	if _, ok := h["Host"]; ok {
		t.Errorf("headers %v name Host", h)
	}
}

func TestPresignPutCurl(t *testing.T) {
	g := startGateway(t, "pre/fix/")
	ctx := context.Background()
	body := bytes.Repeat([]byte("wasm"), 1000)
	url, headers, err := g.store.PresignPut(ctx, "uploads/curl", int64(len(body)), digest(body), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s3test.CurlPut(t, url, headers, body)
	size, etag, err := g.store.Head(ctx, "uploads/curl")
	if err != nil || size != int64(len(body)) || etag == "" {
		t.Fatalf("Head = %d, %q, %v; want %d bytes", size, etag, err, len(body))
	}
}

// TestPresignPutPython PUTs with Python's urllib and only the headers the
// store named, as a user's script would.
func TestPresignPutPython(t *testing.T) {
	g := startGateway(t, "py")
	ctx := context.Background()
	body := []byte("bytes from python")
	url, headers, err := g.store.PresignPut(ctx, "uploads/py", int64(len(body)), digest(body), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s3test.PythonPut(t, url, headers, body)
	size, etag, err := g.store.Head(ctx, "uploads/py")
	if err != nil || size != int64(len(body)) || etag == "" {
		t.Fatalf("Head = %d, %q, %v; want %d bytes", size, etag, err, len(body))
	}
}

func TestPresignPutRefused(t *testing.T) {
	g := startGateway(t, "")
	ctx := context.Background()
	body := []byte("the bytes the host was told about")
	tampered := []byte("the bytes the host was told ABOUT")
	tests := []struct {
		name   string
		expiry time.Duration
		edit   func(url string, h map[string]string) (string, map[string]string, []byte)
	}{
		{"wrong bytes, same length", time.Minute, func(u string, h map[string]string) (string, map[string]string, []byte) {
			return u, h, tampered
		}},
		{"shorter body", time.Minute, func(u string, h map[string]string) (string, map[string]string, []byte) {
			return u, h, body[:len(body)-1]
		}},
		{"longer body", time.Minute, func(u string, h map[string]string) (string, map[string]string, []byte) {
			return u, h, append(append([]byte{}, body...), '!')
		}},
		{"checksum header dropped", time.Minute, func(u string, h map[string]string) (string, map[string]string, []byte) {
			delete(h, "X-Amz-Checksum-Sha256")
			return u, h, body
		}},
		{"checksum header changed", time.Minute, func(u string, h map[string]string) (string, map[string]string, []byte) {
			h["X-Amz-Checksum-Sha256"] = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
			return u, h, tampered
		}},
		{"if-none-match dropped", time.Minute, func(u string, h map[string]string) (string, map[string]string, []byte) {
			delete(h, "If-None-Match")
			return u, h, body
		}},
		{"tampered URL", time.Minute, func(u string, h map[string]string) (string, map[string]string, []byte) {
			return strings.Replace(u, "/refused-", "/refusedX", 1), h, body
		}},
		{"expired URL", time.Second, func(u string, h map[string]string) (string, map[string]string, []byte) {
			time.Sleep(2 * time.Second)
			return u, h, body
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "uploads/refused-" + string(rune('a'+i))
			url, h, err := g.store.PresignPut(ctx, key, int64(len(body)), digest(body), tt.expiry)
			if err != nil {
				t.Fatal(err)
			}
			url, h, b := tt.edit(url, h)
			status, msg := put(t, url, h, b)
			if status < 400 {
				t.Fatalf("PUT accepted (%d): %s", status, msg)
			}
			t.Logf("refused: %d %s", status, msg)
			wantAbsent(t, g.store, key)
			wantAbsent(t, g.store, "uploads/refusedX"+string(rune('a'+i)))
		})
	}
}

func TestPresignPutOnce(t *testing.T) {
	g := startGateway(t, "")
	ctx := context.Background()
	body := []byte("first")
	url, h, err := g.store.PresignPut(ctx, "uploads/once", int64(len(body)), digest(body), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, msg := put(t, url, h, body); status != http.StatusOK {
		t.Fatalf("first PUT: %d %s", status, msg)
	}
	// The same URL again, and a fresh URL for other bytes: If-None-Match
	// refuses both, and the first bytes stay.
	if status, msg := put(t, url, h, body); status != http.StatusPreconditionFailed {
		t.Errorf("second PUT of the same URL: %d %s, want 412", status, msg)
	}
	other := []byte("other")
	url2, h2, err := g.store.PresignPut(ctx, "uploads/once", int64(len(other)), digest(other), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, msg := put(t, url2, h2, other); status != http.StatusPreconditionFailed {
		t.Errorf("PUT over an existing key: %d %s, want 412", status, msg)
	}
	got, _, err := g.store.GetRecord(ctx, "uploads/once", 100)
	if err != nil || string(got) != "first" {
		t.Errorf("object = %q, %v; want the first bytes", got, err)
	}
}

func TestObjects(t *testing.T) {
	g := startGateway(t, "tenant")
	ctx := context.Background()
	body := bytes.Repeat([]byte{0, 'a', 's', 'm'}, 4096)
	url, h, err := g.store.PresignPut(ctx, "uploads/u1", int64(len(body)), digest(body), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, msg := put(t, url, h, body); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, msg)
	}

	get, err := g.store.PresignGet(ctx, "uploads/u1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(get)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("pre-signed GET: %d, %d bytes; want 200 and the body", resp.StatusCode, len(got))
	}
	if resp, err := http.Get(strings.Replace(get, "uploads/u1", "uploads/u2", 1)); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("pre-signed GET with another key: %v %v, want 403", resp.Status, err)
	}

	_, etag, err := g.store.Head(ctx, "uploads/u1")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.store.Copy(ctx, "uploads/u1", `"not-the-etag"`, "artifacts/sha256/"+digest(body)); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("Copy with a stale source ETag = %v, want ErrPreconditionFailed", err)
	}
	wantAbsent(t, g.store, "artifacts/sha256/"+digest(body))
	if err := g.store.Copy(ctx, "uploads/u1", etag, "artifacts/sha256/"+digest(body)); err != nil {
		t.Fatal(err)
	}
	if err := g.store.Copy(ctx, "uploads/u1", etag, "artifacts/sha256/"+digest(body)); !errors.Is(err, ErrExists) {
		t.Errorf("second Copy = %v, want ErrExists", err)
	}
	size, _, err := g.store.Head(ctx, "artifacts/sha256/"+digest(body))
	if err != nil || size != int64(len(body)) {
		t.Fatalf("Head copy = %d, %v", size, err)
	}
	buf := manager.NewWriteAtBuffer(nil)
	n, err := g.store.Get(ctx, "artifacts/sha256/"+digest(body), buf)
	if err != nil || n != int64(len(body)) || !bytes.Equal(buf.Bytes(), body) {
		t.Fatalf("Get = %d, %v; want the body", n, err)
	}
	if _, err := g.store.Get(ctx, "artifacts/sha256/none", manager.NewWriteAtBuffer(nil)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get absent = %v, want ErrNotFound", err)
	}

	if err := g.store.Delete(ctx, "uploads/u1"); err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, g.store, "uploads/u1")
	if err := g.store.Delete(ctx, "uploads/u1"); err != nil {
		t.Errorf("Delete absent = %v, want nil", err)
	}
	if err := g.store.Copy(ctx, "uploads/u1", "", "artifacts/x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Copy from absent = %v, want ErrNotFound", err)
	}
}

func TestRecords(t *testing.T) {
	g := startGateway(t, "hosts")
	ctx := context.Background()
	const key = "functions/f1.json"
	etag, err := g.store.PutIfAbsent(ctx, key, []byte(`{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.store.PutIfAbsent(ctx, key, []byte(`{"v":"other host"}`)); !errors.Is(err, ErrExists) {
		t.Fatalf("second PutIfAbsent = %v, want ErrExists", err)
	}
	body, readTag, err := g.store.GetRecord(ctx, key, 1<<10)
	if err != nil || string(body) != `{"v":1}` || readTag != etag {
		t.Fatalf("GetRecord = %s, %s, %v; want v1 with etag %s", body, readTag, err, etag)
	}
	// Two hosts read the same ETag; the first update wins, the second
	// loses with ErrPreconditionFailed and changes nothing.
	etag2, err := g.store.PutIfMatch(ctx, key, []byte(`{"v":2}`), readTag)
	if err != nil {
		t.Fatal(err)
	}
	if etag2 == etag {
		t.Fatalf("ETag unchanged after update: %s", etag2)
	}
	if _, err := g.store.PutIfMatch(ctx, key, []byte(`{"v":"lost"}`), readTag); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("stale PutIfMatch = %v, want ErrPreconditionFailed", err)
	}
	if body, _, _ := g.store.GetRecord(ctx, key, 1<<10); string(body) != `{"v":2}` {
		t.Errorf("record = %s after a lost race, want v2", body)
	}
	if _, _, err := g.store.GetRecord(ctx, key, 3); err == nil {
		t.Errorf("GetRecord over its limit succeeded")
	}
	if err := g.store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := g.store.PutIfMatch(ctx, key, []byte(`{"v":3}`), etag2); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("PutIfMatch on a deleted record = %v, want ErrNotFound or ErrPreconditionFailed", err)
	}
	wantAbsent(t, g.store, key)
}

func TestList(t *testing.T) {
	g := startGateway(t, "pfx")
	ctx := context.Background()
	var etags []string
	for _, k := range []string{"meta/b.json", "meta/a.json", "other/c"} {
		e, err := g.store.PutIfAbsent(ctx, k, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		etags = append(etags, e)
	}
	got, err := g.store.List(ctx, "meta/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "meta/a.json" || got[1].Key != "meta/b.json" || got[1].ETag != etags[0] || got[0].Size != int64(len("meta/a.json")) {
		t.Fatalf("List(meta/) = %+v", got)
	}
	if err := g.store.DeleteIfMatch(ctx, "meta/a.json", `"not-it"`); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("DeleteIfMatch with a stale ETag: %v, want ErrPreconditionFailed", err)
	}
	if err := g.store.DeleteIfMatch(ctx, "meta/a.json", etags[1]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.store.Head(ctx, "meta/a.json"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after DeleteIfMatch: %v", err)
	}
}
