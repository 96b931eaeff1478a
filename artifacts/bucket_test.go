package artifacts

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/s3store"
	"github.com/udfhost/udfhost/internal/s3store/s3test"
)

const podA = "spiffe://udfhost.local/org/acme/env/default/pool/p/artifact/a"

func TestBucketHappyPath(t *testing.T) {
	e := newBucketEnv(t)
	b := e.host("h-a")
	data := wasmtest.Add()
	up := e.createUpload(b, data)
	if up.Method != http.MethodPut || !strings.Contains(up.URL, "/"+bucketPrefix+"/uploads/"+up.ID+"?") {
		t.Fatalf("upload %+v", up)
	}
	for _, h := range []string{"Content-Length", "X-Amz-Checksum-Sha256", "If-None-Match"} {
		if up.Headers[h] == "" {
			t.Errorf("headers %v lack %s", up.Headers, h)
		}
	}
	e.putOK(up, data)
	art, err := b.Commit(e.ctx, up.ID, "admin", "req-2")
	if err != nil {
		t.Fatal(err)
	}
	if art.Digest != "sha256:"+sha(data) || art.Size != int64(len(data)) || art.Env != "default" || len(art.Exports) != 1 {
		t.Fatalf("artifact %+v", art)
	}
	if got := e.object(objectKey(sha(data))); !bytes.Equal(got, data) {
		t.Fatalf("content-addressed object has %d bytes, want the module", len(got))
	}
	if k := e.keys(bucketUploads); len(k) != 2 || k[0] != uploadBytesKey(up.ID) || k[1] != uploadRecordKey(up.ID) {
		t.Errorf("uploads/ after commit = %v, want the bytes' key and the record", k)
	}
	if got := e.object(uploadBytesKey(up.ID)); len(got) != 0 {
		t.Errorf("the upload's bytes are kept after the commit (%d bytes)", len(got))
	}
	// The URL stays used up: the key is still taken.
	if code, msg := s3test.Put(t, up.URL, up.Headers, data); code != http.StatusPreconditionFailed {
		t.Errorf("PUT after the commit: %d %s, want 412", code, msg)
	}
	if rec := e.uploadRecord(up.ID); rec.State != stateCommitted || rec.ArtifactID != art.ID || rec.ClaimedBy != "" {
		t.Errorf("upload record %+v", rec)
	}
	if ev := e.aud.ofType(audit.TypeArtifactCommitted); len(ev) != 1 || ev[0].Resource != "artifact/"+art.ID || ev[0].Details["upload"] != up.ID {
		t.Errorf("commit events %+v", ev)
	}
	if info, err := b.UploadOf(e.ctx, up.ID); err != nil || info.Env != "default" {
		t.Errorf("UploadOf = %+v, %v", info, err)
	}
	if got, err := b.Get(e.ctx, art.ID); err != nil || got.Digest != art.Digest {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if l, err := b.List(e.ctx, "default"); err != nil || len(l) != 1 || l[0].ID != art.ID {
		t.Fatalf("List = %+v, %v", l, err)
	}
	if l, _ := b.List(e.ctx, "other"); len(l) != 0 {
		t.Errorf("List(other) = %+v", l)
	}

	mod, err := b.Module(e.ctx, art.Digest, podA)
	if err != nil || !bytes.Equal(mod, data) {
		t.Fatalf("Module = %d bytes, %v", len(mod), err)
	}
	ev := e.aud.ofType(audit.TypeArtifactDownloaded)
	if len(ev) != 1 || ev[0].Pod != podA || ev[0].Details["digest"] != art.Digest || ev[0].Details["bytes"] != strconv.Itoa(len(data)) || ev[0].Decision != audit.Allow {
		t.Fatalf("download events %+v", ev)
	}
	// Kept, verified, for the next pod start: no second download.
	if mod, err := b.Module(e.ctx, art.Digest, podA); err != nil || !bytes.Equal(mod, data) {
		t.Fatalf("second Module = %d bytes, %v", len(mod), err)
	}
	if n := len(e.aud.ofType(audit.TypeArtifactDownloaded)); n != 1 {
		t.Errorf("%d downloads audited, want 1 (the second read the local copy)", n)
	}
	// A local copy that no longer hashes to its digest is not used.
	if err := os.WriteFile(b.modulePath(sha(data)), []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	if mod, err := b.Module(e.ctx, art.Digest, podA); err != nil || !bytes.Equal(mod, data) {
		t.Fatalf("Module over a corrupt local copy = %d bytes, %v", len(mod), err)
	}
	if n := len(e.aud.ofType(audit.TypeArtifactDownloaded)); n != 2 {
		t.Errorf("%d downloads audited, want 2", n)
	}
}

// TestBucketPlainClients: curl -T and Python's urllib, with only the
// headers the upload names.
func TestBucketPlainClients(t *testing.T) {
	e := newBucketEnv(t)
	b := e.host("h-a")
	for name, put := range map[string]func(testing.TB, string, map[string]string, []byte){
		"curl": s3test.CurlPut, "urllib": s3test.PythonPut,
	} {
		t.Run(name, func(t *testing.T) {
			data := wasmtest.Functions(len(name), 1, wasmtest.Body())
			up := e.createUpload(b, data)
			put(t, up.URL, up.Headers, data)
			art, err := b.Commit(e.ctx, up.ID, "admin", "req-2")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.object(objectKey(sha(data))), data) || art.Size != int64(len(data)) {
				t.Fatalf("artifact %+v", art)
			}
		})
	}
}

// TestBucketPutRefused: PUTs the bucket refuses leave nothing to commit.
func TestBucketPutRefused(t *testing.T) {
	e := newBucketEnv(t)
	b := e.host("h-a")
	data := wasmtest.Add()
	other := append([]byte{}, data...)
	other[len(other)-2] ^= 1 // same length, other bytes
	tests := []struct {
		name string
		ttl  time.Duration
		edit func(up Upload) (string, map[string]string, []byte)
		want string
	}{
		{"tampered URL", 0, func(up Upload) (string, map[string]string, []byte) {
			return strings.Replace(up.URL, "X-Amz-Expires=", "X-Amz-Expires=1", 1), up.Headers, data
		}, "pending"},
		{"expired URL", time.Second, func(up Upload) (string, map[string]string, []byte) {
			time.Sleep(2 * time.Second)
			return up.URL, up.Headers, data
		}, "expired"},
		{"wrong body for the signed digest", 0, func(up Upload) (string, map[string]string, []byte) {
			return up.URL, up.Headers, other
		}, "pending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, err := b.CreateUpload(e.ctx, UploadRequest{Env: "default", Size: int64(len(data)), SHA256: sha(data), TTL: tt.ttl})
			if err != nil {
				t.Fatal(err)
			}
			url, h, body := tt.edit(up)
			if code, msg := s3test.Put(t, url, h, body); code < 400 {
				t.Fatalf("PUT accepted: %d %s", code, msg)
			}
			if tt.ttl > 0 {
				e.clock.Advance(up.ExpiresAt.Sub(e.clock.Now()) + time.Second)
			}
			_, err = b.Commit(e.ctx, up.ID, "admin", "req-2")
			wantErr(t, err, ErrUploadState, tt.want, "nothing was uploaded")
			e.assertNoArtifacts()
		})
	}
	t.Run("second PUT to the same key", func(t *testing.T) {
		up := e.createUpload(b, data)
		e.putOK(up, data)
		if code, msg := s3test.Put(t, up.URL, up.Headers, data); code != http.StatusPreconditionFailed {
			t.Fatalf("second PUT: %d %s, want 412", code, msg)
		}
		if got := e.object(uploadBytesKey(up.ID)); !bytes.Equal(got, data) {
			t.Fatal("the first bytes were replaced")
		}
		art, err := b.Commit(e.ctx, up.ID, "admin", "req-2")
		if err != nil || art.Digest != "sha256:"+sha(data) {
			t.Fatalf("Commit after a refused second PUT = %+v, %v; want the first bytes", art, err)
		}
	})
}

// TestBucketInvalidModules: the bucket store rejects exactly what the
// local one does, with the same errors, records and audit events.
func TestBucketInvalidModules(t *testing.T) {
	e := newBucketEnv(t)
	b := e.host("h-a")
	for _, tc := range invalidModules() {
		t.Run(tc.name, func(t *testing.T) {
			up := e.createUpload(b, tc.data)
			e.putOK(up, tc.data)
			_, err := b.Commit(e.ctx, up.ID, "admin", "req-9")
			wantErr(t, err, tc.sentinel, tc.msg)
			e.assertNoArtifacts()
			if rec := e.uploadRecord(up.ID); rec.State != stateRejected || !strings.Contains(rec.Reason, tc.msg) {
				t.Fatalf("record %+v", rec)
			}
			var ev []audit.Event
			for _, x := range e.aud.ofType(audit.TypeArtifactRejected) {
				if x.Resource == "upload/"+up.ID {
					ev = append(ev, x)
				}
			}
			if len(ev) != 1 || ev[0].Decision != audit.Deny || !strings.Contains(ev[0].Reason, tc.msg) {
				t.Fatalf("rejection events %+v", ev)
			}
			if got := e.object(uploadBytesKey(up.ID)); len(got) != 0 {
				t.Errorf("the rejected bytes are kept (%d bytes)", len(got))
			}
			_, err = b.Commit(e.ctx, up.ID, "admin", "req-10")
			wantErr(t, err, ErrUploadState, "rejected")
		})
	}
}

func TestNewBucketArgs(t *testing.T) {
	st, err := s3store.New(context.Background(), s3store.Options{Bucket: "b", Region: "us-east-1", Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	aud := &fakeAuditor{}
	tests := []struct {
		name string
		cfg  BucketConfig
		want string
	}{
		{"no bucket", BucketConfig{HostID: "h", Audit: aud}, "no bucket"},
		{"no host id", BucketConfig{Bucket: st, Audit: aud}, "no host id"},
		{"no auditor", BucketConfig{Bucket: st, HostID: "h"}, "no auditor"},
		{"TTL past SigV4's", BucketConfig{Bucket: st, HostID: "h", Audit: aud, MaxTTL: 8 * 24 * time.Hour}, "exceeds the 168h0m0s"},
	}
	for _, tt := range tests {
		if _, err := NewBucket(context.Background(), tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewBucket = %v, want %q", tt.name, err, tt.want)
		}
	}
}
