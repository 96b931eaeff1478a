package functions

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/udfhost/udfhost/internal/s3store"
	"github.com/udfhost/udfhost/internal/s3store/s3test"
	"github.com/udfhost/udfhost/internal/udf"
)

// bucketHosts starts a versitygw and opens n registries on one bucket
// prefix, as n hosts would.
func bucketHosts(t *testing.T, n int) (*s3test.Gateway, []*Registry) {
	t.Helper()
	g := s3test.Start(t)
	var regs []*Registry
	for range n {
		regs = append(regs, openBucket(t, g))
	}
	return g, regs
}

func openBucket(t *testing.T, g *s3test.Gateway) *Registry {
	t.Helper()
	b, err := s3store.New(context.Background(), s3store.Options{
		Bucket: s3test.Bucket, Prefix: "pool", Endpoint: g.Endpoint, Region: s3test.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenBucketRegistry(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testFunction(name string) *Function {
	return &Function{Name: name, Env: "default", Pool: "default", ArtifactID: "art-1", Export: "add",
		Args: []udf.Type{udf.BigInt, udf.BigInt}, Result: udf.BigInt, ABI: udf.ABIDirect}
}

func nameList(fs []*Function) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Env+"/"+f.Name)
	}
	return strings.Join(s, ",")
}

// TestBucketConverges: what one host creates or deletes, another's Sync
// reports and applies; a host opened later loads everything; the records
// in the bucket are the bytes a directory holds.
func TestBucketConverges(t *testing.T) {
	ctx := t.Context()
	g, hosts := bucketHosts(t, 2)
	a, b := hosts[0], hosts[1]
	for path, f := range recordFixtures {
		if err := a.Create(ctx, f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		got, err := os.ReadFile(filepath.Join(g.Root, s3test.Bucket, "pool", "functions", path))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("testdata/records", path))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s stored in the bucket as\n%s\nwant\n%s", path, got, want)
		}
	}
	ch, err := b.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := nameList(ch.Added); got != "analytics/upper,default/add" || len(ch.Removed) != 0 {
		t.Fatalf("Sync on B: added %q removed %q", got, nameList(ch.Removed))
	}
	if f, err := b.Get("default", "add"); err != nil || f.ArtifactID != recordFixtures["default/add.json"].ArtifactID {
		t.Fatalf("B.Get after Sync = %+v, %v", f, err)
	}
	if ch, err := b.Sync(ctx); err != nil || len(ch.Added)+len(ch.Removed) != 0 {
		t.Errorf("second Sync = %+v, %v; want no change", ch, err)
	}

	if _, err := b.Delete(ctx, "default", "add"); err != nil {
		t.Fatal(err)
	}
	ch, err = a.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := nameList(ch.Removed); got != "default/add" || len(ch.Added) != 0 {
		t.Fatalf("Sync on A after B's delete: added %q removed %q", nameList(ch.Added), got)
	}
	if _, err := a.Get("default", "add"); !errors.Is(err, ErrNotFound) {
		t.Errorf("A.Get of a function B deleted = %v, want ErrNotFound", err)
	}

	c := openBucket(t, g)
	if got := nameList(c.List("")); got != "analytics/upper" {
		t.Errorf("a host opened now loads %q, want analytics/upper", got)
	}
}

// TestBucketCreateRace: hosts creating one name at once: exactly one
// wins, every other gets ErrExists.
func TestBucketCreateRace(t *testing.T) {
	ctx := t.Context()
	_, hosts := bucketHosts(t, 4)
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			f := testFunction("race")
			f.ArtifactID = "art-" + string(rune('a'+i))
			errs[i] = h.Create(ctx, f)
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrExists):
			t.Errorf("host %d: %v, want nil or ErrExists", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d hosts created the name, want exactly 1: %v", won, errs)
	}
	// Every host ends up with the winner's record.
	var winner string
	for i, h := range hosts {
		if _, err := h.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		f, err := h.Get("default", "race")
		if err != nil {
			t.Fatalf("host %d: %v", i, err)
		}
		if winner == "" {
			winner = f.ArtifactID
		} else if f.ArtifactID != winner {
			t.Errorf("host %d sees artifact %s, host 0 %s", i, f.ArtifactID, winner)
		}
	}
}

// TestBucketDeleteStale: a delete on a record another host replaced since
// is refused with ErrChanged, and the replacement survives it; Sync then
// reports the replacement.
func TestBucketDeleteStale(t *testing.T) {
	ctx := t.Context()
	_, hosts := bucketHosts(t, 2)
	a, b := hosts[0], hosts[1]
	if err := a.Create(ctx, testFunction("f")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A replaces it; B has not synced and holds the old ETag.
	if _, err := a.Delete(ctx, "default", "f"); err != nil {
		t.Fatal(err)
	}
	v2 := testFunction("f")
	v2.ArtifactID = "art-2"
	if err := a.Create(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Delete(ctx, "default", "f"); !errors.Is(err, ErrChanged) {
		t.Fatalf("B deletes a record A replaced: %v, want ErrChanged", err)
	}
	if f, err := b.Get("default", "f"); err != nil || f.ArtifactID != "art-1" {
		t.Fatalf("after a refused delete B has %+v, %v; want the old record still", f, err)
	}
	ch, err := b.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Removed) != 1 || ch.Removed[0].ArtifactID != "art-1" || len(ch.Added) != 1 || ch.Added[0].ArtifactID != "art-2" {
		t.Fatalf("Sync after the replacement = removed %+v added %+v", ch.Removed, ch.Added)
	}
	if _, err := b.Delete(ctx, "default", "f"); err != nil {
		t.Fatalf("delete after Sync: %v", err)
	}
	// A deleting what B deleted: not found, and gone from A too.
	if _, err := a.Delete(ctx, "default", "f"); !errors.Is(err, ErrNotFound) {
		t.Errorf("A deletes what B deleted: %v, want ErrNotFound", err)
	}
	if len(a.List("")) != 0 {
		t.Errorf("A still lists %q", nameList(a.List("")))
	}
}

// TestBucketUnavailable: with the store down, a create or delete fails
// with ErrUnavailable naming the store and changes nothing, Sync reports
// the failure and removes nothing, and once the store is back all works.
func TestBucketUnavailable(t *testing.T) {
	ctx := t.Context()
	g, hosts := bucketHosts(t, 1)
	r := hosts[0]
	if err := r.Create(ctx, testFunction("kept")); err != nil {
		t.Fatal(err)
	}
	g.Stop()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "s3://"+s3test.Bucket+"/pool/") {
			t.Errorf("%s with the store down: %v; want ErrUnavailable naming s3://%s/pool/", what, err, s3test.Bucket)
		}
	}
	check("create", r.Create(ctx, testFunction("new")))
	_, err := r.Delete(ctx, "default", "kept")
	check("delete", err)
	_, err = r.Sync(ctx)
	check("sync", err)
	if got := nameList(r.List("")); got != "default/kept" {
		t.Errorf("with the store down the registry has %q, want default/kept", got)
	}
	if _, cancel, err := r.Reserve(testFunction("new")); err != nil {
		t.Errorf("a failed create left its name taken: %v", err)
	} else {
		cancel()
	}
	g.Restart()
	if err := r.Create(ctx, testFunction("new")); err != nil {
		t.Fatalf("create after restart: %v", err)
	}
	if ch, err := r.Sync(ctx); err != nil || len(ch.Added)+len(ch.Removed) != 0 {
		t.Errorf("Sync after restart = %+v, %v; want no change", ch, err)
	}
	if got := nameList(openBucket(t, g).List("")); got != "default/kept,default/new" {
		t.Errorf("reopened registry has %q", got)
	}
}
