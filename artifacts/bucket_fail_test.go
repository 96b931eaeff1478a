package artifacts

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/s3store"
)

// faultBucket runs hook before the writes of a commit, to stop the
// gateway or kill the "host" at that point.
type faultBucket struct {
	Bucket
	hook func(op, key string)
}

func (f *faultBucket) Copy(ctx context.Context, src, etag, dst string) error {
	f.hook("copy", dst)
	return f.Bucket.Copy(ctx, src, etag, dst)
}

func (f *faultBucket) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	f.hook("create", key)
	return f.Bucket.PutIfAbsent(ctx, key, body)
}

func (f *faultBucket) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	f.hook("update:"+string(body), key)
	return f.Bucket.PutIfMatch(ctx, key, body, etag)
}

// TestBucketDownloadURLScoped: a pre-signed GET names one key; edited to
// fetch another artifact's bytes, the bucket refuses it.
func TestBucketDownloadURLScoped(t *testing.T) {
	e := newBucketEnv(t)
	a := e.host("h-a")
	x, y := wasmtest.Add(), wasmtest.Batch()
	e.upload(a, x)
	e.upload(a, y)
	url, err := e.s3.PresignGet(e.ctx, objectKey(sha(x)), DefaultDownloadTTL)
	if err != nil {
		t.Fatal(err)
	}
	buf := &memWriterAt{buf: make([]byte, 0, 1<<20)}
	if n, err := s3store.DownloadURL(e.ctx, url, buf, 1<<20); err != nil || !bytes.Equal(buf.buf[:n], x) {
		t.Fatalf("DownloadURL = %d, %v; want the module", n, err)
	}
	edited := strings.Replace(url, sha(x), sha(y), 1)
	_, err = s3store.DownloadURL(e.ctx, edited, &memWriterAt{buf: make([]byte, 0, 1<<20)}, 1<<20)
	var se *s3store.HTTPStatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Fatalf("edited URL: %v, want 403", err)
	}
	if strings.Contains(err.Error(), "X-Amz-Signature") {
		t.Errorf("error shows the signature: %v", err)
	}
	// Longer than the caller allows: refused, not buffered.
	if _, err := s3store.DownloadURL(e.ctx, url, &memWriterAt{buf: make([]byte, 0, 1<<20)}, 10); !errors.Is(err, s3store.ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
}

// TestBucketDigestMismatch: bytes replaced in the bucket behind the hosts'
// backs are refused, audited as a security event and never kept.
func TestBucketDigestMismatch(t *testing.T) {
	e := newBucketEnv(t)
	data := wasmtest.Add()
	art := e.upload(e.host("h-a"), data)
	b := e.host("h-b")
	evil := append([]byte{}, data...)
	evil[len(evil)-2] ^= 0x01
	for name, body := range map[string][]byte{"same length": evil, "longer": append(evil, 0, 0)} {
		t.Run(name, func(t *testing.T) {
			e.replace(objectKey(sha(data)), body)
			_, err := b.Module(e.ctx, art.Digest, podA)
			wantUnavailable(t, err, "digest mismatch", objectKey(sha(data)))
			if entries, _ := os.ReadDir(filepath.Join(b.cfg.CacheDir, modulesSubdir)); len(entries) != 0 {
				t.Fatalf("kept %d files after a mismatch", len(entries))
			}
		})
	}
	ev := e.aud.ofType(audit.TypeArtifactDigestMismatch)
	if len(ev) != 2 {
		t.Fatalf("mismatch events %+v, want 2", ev)
	}
	for _, x := range ev {
		if x.Pod != podA || x.Decision != audit.Deny || x.Details["digest"] != art.Digest || !strings.Contains(x.Reason, "digest mismatch") {
			t.Fatalf("mismatch event %+v", x)
		}
	}
	if n := len(e.aud.ofType(audit.TypeArtifactDownloaded)); n != 0 {
		t.Fatalf("%d downloads audited as allowed", n)
	}
}

// TestBucketStoreDown: the bucket stopped at each step of a commit, and
// during a download: the error wraps ErrUnavailable and names the store,
// nothing is half registered, and once the bucket is back a retry works.
func TestBucketStoreDown(t *testing.T) {
	steps := []struct{ name, op, key, want string }{
		{"before the commit", "", "", "read uploads/"},
		{"at the claim", "update", uploadBucketPrefix(), "commit upload"},
		{"at the copy", "copy", bucketObjects, "copy uploads/"},
		{"at the artifact record", "create", bucketMeta, "create meta/"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e := newBucketEnv(t)
			armed := false
			fb := &faultBucket{Bucket: e.s3, hook: func(op, key string) {
				if armed && strings.HasPrefix(op, st.op) && strings.HasPrefix(key, st.key) {
					armed = false
					e.g.Stop()
				}
			}}
			a := e.hostWith(BucketConfig{HostID: "h-a", Bucket: fb})
			data := wasmtest.Add()
			up := e.createUpload(a, data)
			e.putOK(up, data)
			if st.op == "" {
				e.g.Stop()
			} else {
				armed = true
			}
			_, err := a.Commit(e.ctx, up.ID, "admin", "req-2")
			wantUnavailable(t, err, "commit upload "+up.ID, st.want)
			e.g.Restart()
			e.assertNoArtifacts()
			if l, _ := a.List(e.ctx, ""); len(l) != 0 {
				t.Fatalf("listed after a failed commit: %v", ids(l))
			}
			art, err := a.Commit(e.ctx, up.ID, "admin", "req-3")
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if rec := e.uploadRecord(up.ID); rec.State != stateCommitted || rec.ArtifactID != art.ID {
				t.Fatalf("record after the retry %+v", rec)
			}
		})
	}
	t.Run("during a download", func(t *testing.T) {
		e := newBucketEnv(t)
		art := e.upload(e.host("h-a"), wasmtest.Add())
		b := e.host("h-b")
		e.g.Stop()
		_, err := b.Module(e.ctx, art.Digest, podA)
		wantUnavailable(t, err, "download module "+art.Digest+" for "+podA)
		if entries, _ := os.ReadDir(filepath.Join(b.cfg.CacheDir, modulesSubdir)); len(entries) != 0 {
			t.Fatalf("kept %d files after a failed download", len(entries))
		}
		e.g.Restart()
		if _, err := b.Module(e.ctx, art.Digest, podA); err != nil {
			t.Fatalf("retry: %v", err)
		}
	})
}

func uploadBucketPrefix() string { return bucketUploads }

// commitAndDie uploads data through host h-x and commits it; the host
// "dies" (its Commit stops, leaving the bucket as it is) before the first
// write for which dies is true.
func (e *bucketEnv) commitAndDie(data []byte, dies func(op, key string) bool) (up Upload) {
	e.t.Helper()
	type died struct{}
	fb := &faultBucket{Bucket: e.s3, hook: func(op, key string) {
		if dies(op, key) {
			panic(died{})
		}
	}}
	x := e.hostWith(BucketConfig{HostID: "h-x", Bucket: fb})
	up = e.createUpload(x, data)
	e.putOK(up, data)
	defer func() {
		if r := recover(); r != (died{}) {
			panic(r)
		}
	}()
	x.Commit(e.ctx, up.ID, "admin", "req-2")
	e.t.Fatal("the host did not die")
	return up
}

// TestBucketCrashMidCommit: a host dies after its claim and copy, before
// the artifact record. No host sees an artifact; another host respects
// the claim until its lease ends; the dead host, restarted, resolves it
// and a retry commits.
func TestBucketCrashMidCommit(t *testing.T) {
	e := newBucketEnv(t)
	data := wasmtest.Add()
	up := e.commitAndDie(data, func(op, key string) bool {
		return op == "create" && strings.HasPrefix(key, bucketMeta)
	})
	if rec := e.uploadRecord(up.ID); rec.State != stateCommitting || rec.ClaimedBy != "h-x" {
		t.Fatalf("record after the crash %+v", rec)
	}
	if k := e.keys(bucketObjects); len(k) != 1 {
		t.Fatalf("objects after the crash %v, want the copy", k)
	}
	e.assertNoArtifacts()

	b := e.host("h-b")
	if l, _ := b.List(e.ctx, ""); len(l) != 0 {
		t.Fatalf("another host lists %v", ids(l))
	}
	_, err := b.Commit(e.ctx, up.ID, "admin", "req-3")
	wantErr(t, err, ErrConflict, "being committed by host h-x")

	x2 := e.host("h-x") // restarted
	if rec := e.uploadRecord(up.ID); rec.State != stateReceived || rec.ClaimedBy != "" {
		t.Fatalf("record after the restart %+v", rec)
	}
	art, err := x2.Commit(e.ctx, up.ID, "admin", "req-4")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(e.ctx, art.ID); err != nil || got.Digest != "sha256:"+sha(data) {
		t.Fatalf("B.Get = %+v, %v", got, err)
	}
}

// TestBucketCrashAfterCommitPoint: a host dies after writing the artifact
// record, before marking the upload. The artifact exists; the claim is
// resolved as committed, by the host itself at restart or by another
// after the lease, and never committed twice.
func TestBucketCrashAfterCommitPoint(t *testing.T) {
	for _, by := range []string{"restart", "lease"} {
		t.Run(by, func(t *testing.T) {
			e := newBucketEnv(t)
			up := e.commitAndDie(wasmtest.Add(), func(op, key string) bool {
				return strings.HasPrefix(op, "update:") && strings.Contains(op, `"state":"committed"`)
			})
			metas := e.keys(bucketMeta)
			if len(metas) != 1 {
				t.Fatalf("artifact records %v, want the one written", metas)
			}
			var h *BucketStore
			if by == "restart" {
				h = e.host("h-x")
			} else {
				h = e.host("h-b")
				e.clock.Advance(DefaultCommitLease + 1)
			}
			_, err := h.Commit(e.ctx, up.ID, "admin", "req-3")
			wantErr(t, err, ErrUploadState, "already committed as art-")
			if rec := e.uploadRecord(up.ID); rec.State != stateCommitted || metaKey(rec.ArtifactID) != metas[0] {
				t.Fatalf("record %+v, artifact records %v", rec, metas)
			}
			if k := e.keys(bucketMeta); len(k) != 1 {
				t.Fatalf("artifact records %v after the retry", k)
			}
		})
	}
}

// slowBucket never answers Head, and pre-signs GETs for a server that
// accepts connections and never answers.
type slowBucket struct {
	Bucket
	hang string // URL of the silent server
}

func (s slowBucket) Head(ctx context.Context, key string) (int64, string, error) {
	<-ctx.Done()
	return 0, "", ctx.Err()
}

func (s slowBucket) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	return s.hang + "/" + key, nil
}

// TestBucketSlowStore: a bucket that does not answer fails the call with
// ErrUnavailable once RequestTimeout has passed, not at the caller's
// deadline, and leaves nothing behind.
func TestBucketSlowStore(t *testing.T) {
	e := newBucketEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	data := wasmtest.Add()
	art := e.upload(e.host("h-a"), data)
	slow := e.hostWith(BucketConfig{HostID: "h-s", Bucket: slowBucket{Bucket: e.s3, hang: "http://" + l.Addr().String()}, RequestTimeout: 200 * time.Millisecond})

	up := e.createUpload(slow, data)
	e.putOK(up, data)
	_, err = slow.Commit(e.ctx, up.ID, "admin", "req-2")
	wantUnavailable(t, err, "commit upload "+up.ID, "no answer within 200ms")
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a slow bucket reads as the caller's deadline: %v", err)
	}
	if rec := e.uploadRecord(up.ID); rec.State != statePending {
		t.Errorf("record after a slow commit %+v", rec)
	}

	_, err = slow.Module(e.ctx, art.Digest, podA)
	wantUnavailable(t, err, "download module", "no answer within 200ms")
	if entries, _ := os.ReadDir(filepath.Join(slow.cfg.CacheDir, modulesSubdir)); len(entries) != 0 {
		t.Fatalf("kept %d files after a slow download", len(entries))
	}
}
