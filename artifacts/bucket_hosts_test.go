package artifacts

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
)

// TestBucketTwoHosts: two hosts on one bucket see each other's uploads,
// artifacts, quarantines and deletions, and a restarted host rebuilds
// everything from the bucket.
func TestBucketTwoHosts(t *testing.T) {
	e := newBucketEnv(t)
	a, b := e.host("h-a"), e.host("h-b")
	data := wasmtest.Add()

	// A URL issued on A is committed on B; A finds the artifact at once.
	up := e.createUpload(a, data)
	e.putOK(up, data)
	if info, err := b.UploadOf(e.ctx, up.ID); err != nil || info.ID != up.ID {
		t.Fatalf("B.UploadOf = %+v, %v", info, err)
	}
	art, err := b.Commit(e.ctx, up.ID, "admin", "req-2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Get(e.ctx, art.ID)
	if err != nil || got.Digest != art.Digest {
		t.Fatalf("A.Get before any Sync = %+v, %v", got, err)
	}
	if mod, err := a.Module(e.ctx, art.Digest, podA); err != nil || !bytes.Equal(mod, data) {
		t.Fatalf("A.Module = %d bytes, %v", len(mod), err)
	}

	// Quarantine on A: B refuses the code once it has synced.
	q := Quarantine{Since: e.clock.Now(), Reason: "trapped 5 times", Violations: 5}
	if arts, err := a.Quarantine(e.ctx, art.Digest, q); err != nil || len(arts) != 1 || arts[0].Quarantine == nil {
		t.Fatalf("A.Quarantine = %+v, %v", arts, err)
	}
	if err := b.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	if bq := b.Quarantined(art.Digest); bq == nil || bq.Reason != q.Reason {
		t.Fatalf("B.Quarantined after Sync = %+v", bq)
	}
	// A second quarantine on B keeps the first.
	if arts, err := b.Quarantine(e.ctx, art.Digest, Quarantine{Since: e.clock.Now(), Reason: "other"}); err != nil || arts[0].Quarantine.Reason != q.Reason {
		t.Fatalf("B.Quarantine again = %+v, %v", arts, err)
	}
	// Release on B: A runs it again after its Sync.
	if _, was, err := b.Release(e.ctx, art.ID); err != nil || !was {
		t.Fatalf("B.Release = %v, %v", was, err)
	}
	if err := a.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	if aq := a.Quarantined(art.Digest); aq != nil {
		t.Fatalf("A.Quarantined after the release and Sync = %+v", aq)
	}
	if _, was, err := a.Release(e.ctx, art.ID); err != nil || was {
		t.Fatalf("second Release = %v, %v; want not quarantined", was, err)
	}

	// A restarted host rebuilds the index from the bucket.
	art2 := e.upload(a, wasmtest.Batch())
	if _, err := a.Quarantine(e.ctx, art2.Digest, q); err != nil {
		t.Fatal(err)
	}
	c := e.host("h-c")
	listA, _ := a.List(e.ctx, "")
	listC, _ := c.List(e.ctx, "")
	if len(listC) != 2 || !reflect.DeepEqual(ids(listA), ids(listC)) || c.Quarantined(art2.Digest) == nil {
		t.Fatalf("fresh host lists %v (quarantined %v), A lists %v", ids(listC), c.Quarantined(art2.Digest), ids(listA))
	}

	// Delete on B: A answers not found after its Sync.
	if err := b.Delete(e.ctx, art.ID, "admin", "req-3"); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(e.ctx, art.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("A.Get after B's delete = %v, want ErrNotFound", err)
	}
	if l, _ := a.List(e.ctx, ""); len(l) != 1 || l[0].ID != art2.ID {
		t.Fatalf("A.List after the delete = %v", ids(l))
	}
	if err := a.Delete(e.ctx, art.ID, "admin", "req-4"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete = %v, want ErrNotFound", err)
	}
	// The bytes stay (content addressed; see Delete).
	if got := e.object(objectKey(sha(data))); !bytes.Equal(got, data) {
		t.Fatal("module bytes removed")
	}
}

func ids(as []*Artifact) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

// TestBucketCommitRace: two hosts commit one upload at once; one wins,
// the other gets a clear error — ErrConflict while the winner holds its
// claim, ErrUploadState once it has committed — and one artifact exists.
func TestBucketCommitRace(t *testing.T) {
	e := newBucketEnv(t)
	hosts := []*BucketStore{e.host("h-a"), e.host("h-b")}
	for round := 0; round < 5; round++ {
		data := wasmtest.Functions(1+round, 1, wasmtest.Body())
		up := e.createUpload(hosts[0], data)
		e.putOK(up, data)
		var wg sync.WaitGroup
		errs := make([]error, len(hosts))
		arts := make([]*Artifact, len(hosts))
		for i, h := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				arts[i], errs[i] = h.Commit(e.ctx, up.ID, "admin", "req")
			}()
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			if err == nil {
				won++
				continue
			}
			if errors.Is(err, ErrConflict) {
				wantErr(t, err, ErrConflict, "upload "+up.ID)
			} else {
				wantErr(t, err, ErrUploadState, "upload "+up.ID)
			}
			t.Logf("round %d: host %d lost: %v", round, i, err)
		}
		if won != 1 {
			t.Fatalf("round %d: %d commits won (%v)", round, won, errs)
		}
	}
	if err := hosts[1].Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := hosts[1].List(e.ctx, ""); len(l) != 5 {
		t.Fatalf("%d artifacts, want 5", len(l))
	}
}

// TestBucketQuarantineWhileDown: a quarantine the bucket cannot take is
// enforced here at once and written when the bucket is back.
func TestBucketQuarantineWhileDown(t *testing.T) {
	e := newBucketEnv(t)
	a := e.host("h-a")
	art := e.upload(a, wasmtest.Add())
	e.g.Stop()
	_, err := a.Quarantine(e.ctx, art.Digest, Quarantine{Since: time.Now(), Reason: "escaped"})
	wantUnavailable(t, err, "quarantine "+art.Digest)
	if a.Quarantined(art.Digest) == nil {
		t.Fatal("not enforced while the bucket is down")
	}
	if err := a.Sync(e.ctx); err == nil {
		t.Fatal("Sync with the bucket down succeeded")
	}
	e.g.Restart()
	if err := a.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	if b := e.host("h-b"); b.Quarantined(art.Digest) == nil || b.Quarantined(art.Digest).Reason != "escaped" {
		t.Fatalf("another host does not see the quarantine written on Sync")
	}
}

// countingBucket counts the records read.
type countingBucket struct {
	Bucket
	mu    sync.Mutex
	reads []string
}

func (c *countingBucket) GetRecord(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	c.mu.Lock()
	c.reads = append(c.reads, key)
	c.mu.Unlock()
	return c.Bucket.GetRecord(ctx, key, limit)
}

func (c *countingBucket) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reads
	c.reads = nil
	return r
}

// TestBucketSyncReadsOnlyChanges: Sync reads the records whose ETag
// changed since the last one, and no others.
func TestBucketSyncReadsOnlyChanges(t *testing.T) {
	e := newBucketEnv(t)
	a := e.host("h-a")
	for i := 0; i < 3; i++ {
		e.upload(a, wasmtest.Functions(i+1, 1, wasmtest.Body()))
	}
	cb := &countingBucket{Bucket: e.s3}
	b := e.hostWith(BucketConfig{HostID: "h-b", Bucket: cb})
	if r := cb.take(); len(r) != 3+3 { // 3 artifacts, 3 upload records (recovery)
		t.Fatalf("opening read %v", r)
	}
	if err := b.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	if r := cb.take(); len(r) != 0 {
		t.Fatalf("Sync without changes read %v", r)
	}
	art := e.upload(a, wasmtest.Functions(9, 1, wasmtest.Body()))
	if _, err := a.Quarantine(e.ctx, art.Digest, Quarantine{Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	h, _ := parseDigest(art.Digest)
	if r := cb.take(); !reflect.DeepEqual(r, []string{metaKey(art.ID), quarantineKey(h)}) {
		t.Fatalf("Sync after one commit and one quarantine read %v", r)
	}
	if err := b.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	if r := cb.take(); len(r) != 0 {
		t.Fatalf("Sync without changes read %v", r)
	}
}
