package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/presign"
	"github.com/udfhost/udfhost/sandbox"
)

func TestQuarantinerWindow(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		after  int
		window time.Duration
		at     []time.Duration // violations, as offsets from t0
		trips  []int           // indexes into at that trip a quarantine
	}{
		{"three quick ones", 3, 10 * time.Minute, []time.Duration{0, time.Second, 2 * time.Second}, []int{2}},
		{"spread wider than the window", 3, 10 * time.Minute, []time.Duration{0, 6 * time.Minute, 12 * time.Minute, 13 * time.Minute}, []int{3}},
		{"exactly the window still counts", 2, time.Minute, []time.Duration{0, time.Minute}, []int{1}},
		{"just past the window does not", 2, time.Minute, []time.Duration{0, time.Minute + 1}, nil},
		{"count restarts after a trip", 2, time.Hour, []time.Duration{0, 1, 2, 3, 4}, []int{1, 3}},
		{"one is enough", 1, time.Minute, []time.Duration{0, time.Hour}, []int{0, 1}},
		{"no window counts forever", 2, 0, []time.Duration{0, 1000 * time.Hour}, []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var qr quarantiner
			var trips []int
			for i, d := range tc.at {
				if _, trip := qr.add("sha256:aa", t0.Add(d), tc.after, tc.window); trip {
					trips = append(trips, i)
				}
				// Another artifact's violations never count.
				qr.add("sha256:bb", t0.Add(d), tc.after+1, tc.window)
			}
			if fmt.Sprint(trips) != fmt.Sprint(tc.trips) {
				t.Errorf("trips at %v, want %v", trips, tc.trips)
			}
		})
	}
}

func TestQuarantinable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&sandbox.CallError{Class: sandbox.ErrTimeout, Msg: "batch exceeded its deadline"}, true},
		{&sandbox.CallError{Class: sandbox.ErrWorkerDied, Msg: "worker died"}, true},
		{fmt.Errorf("%w: offsets past the end", sandbox.ErrBadOutput), true},
		{&sandbox.CallError{Class: sandbox.ErrWorkerDied, Violation: &sandbox.Violation{Layer: "seccomp", Syscall: "socket"}}, true},
		{&sandbox.CallError{Class: sandbox.ErrTrap, Violation: &sandbox.Violation{Layer: "cgroup", Limit: "memory"}}, true},
		{&sandbox.CallError{Class: sandbox.ErrTrap, Msg: "unreachable"}, false},
		{&sandbox.CallError{Class: sandbox.ErrGuest, Msg: "bad row"}, false},
		{context.Canceled, false},
	}
	for _, tc := range tests {
		if got := quarantinable(tc.err); got != tc.want {
			t.Errorf("quarantinable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// storeWithArtifact opens a real artifact store behind a real URL endpoint
// and commits one module to it.
func storeWithArtifact(t *testing.T) (*artifacts.Store, *artifacts.Artifact) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	log, err := audit.Open(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	var store *artifacts.Store
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { store.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	store, err = artifacts.New(ctx, artifacts.Config{
		Dir: filepath.Join(dir, "artifacts"), Audit: log,
		Signer: presign.NewSigner(bytes.Repeat([]byte{7}, presign.KeySize), srv.URL),
	})
	if err != nil {
		t.Fatal(err)
	}
	// (module (func (export "f")))
	wasm := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x07\x05\x01\x01f\x00\x00\x0a\x04\x01\x02\x00\x0b")
	sum := sha256.Sum256(wasm)
	up, err := store.CreateUpload(ctx, artifacts.UploadRequest{Env: "default", Size: int64(len(wasm)), SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(up.Method, up.URL, bytes.NewReader(wasm))
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %v %v", resp, err)
	}
	resp.Body.Close()
	art, err := store.Commit(ctx, up.ID, "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	return store, art
}

func TestQuarantinerQuarantinesOnceAndRestartsAfterRelease(t *testing.T) {
	ctx := context.Background()
	store, art := storeWithArtifact(t)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	qr := quarantiner{now: func() time.Time { return now }}
	pool := &policies.Pool{QuarantineAfter: 3, QuarantineWindow: 10 * time.Minute}

	violate := func(reason string) *artifacts.Quarantine {
		t.Helper()
		now = now.Add(time.Minute)
		q, err := qr.violation(ctx, store, art.Digest, pool, reason)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	for i := range 2 {
		if q := violate("first ones"); q != nil || store.Quarantined(art.Digest) != nil {
			t.Fatalf("quarantined after %d violations", i+1)
		}
	}
	q := violate("batch exceeded its deadline of 2s")
	if q == nil || q.Violations != 3 || q.Reason != "batch exceeded its deadline of 2s" || !q.Since.Equal(now) {
		t.Fatalf("third violation: quarantine %+v", q)
	}
	if got := store.Quarantined(art.Digest); got == nil || got.Violations != 3 {
		t.Fatalf("store has %+v", got)
	}
	// Batches that were in flight fail after the quarantine: they neither
	// quarantine again nor count toward the next time.
	for range 5 {
		if q := violate("straggler"); q != nil {
			t.Fatalf("quarantined again: %+v", q)
		}
	}
	if _, was, err := store.Release(ctx, art.ID); err != nil || !was {
		t.Fatalf("release: %v %v", was, err)
	}
	for i := range 2 {
		if q := violate("after release"); q != nil {
			t.Fatalf("quarantined %d violations after release", i+1)
		}
	}
	if q := violate("again"); q == nil || q.Violations != 3 {
		t.Fatalf("third violation after release: %+v", q)
	}

	off := quarantiner{}
	pool.QuarantineAfter = 0
	store.Release(ctx, art.ID)
	for range 10 {
		if q, err := off.violation(ctx, store, art.Digest, pool, "x"); q != nil || err != nil {
			t.Fatalf("QuarantineAfter 0 quarantined: %+v %v", q, err)
		}
	}
}

func TestQuarantinedErrorIsFailedPrecondition(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab12", 16)
	err := fmt.Errorf("invoke: %w", &quarantinedError{digest: digest, artifactID: "art-0123456789abcdef",
		q: &artifacts.Quarantine{Violations: 3, Reason: "batch exceeded its deadline of 2s"}})
	st := status.Convert(toStatus(err))
	want := `artifact sha256:ab12ab12ab12… is quarantined after 3 sandbox violations (last: batch exceeded its deadline of 2s); an admin can re-enable it with "udfhost artifact release art-0123456789abcdef"`
	if st.Code() != codes.FailedPrecondition || !strings.HasSuffix(st.Message(), want) {
		t.Errorf("status %s %q,\nwant FAILED_PRECONDITION %q", st.Code(), st.Message(), want)
	}
	if !errors.Is(err, errQuarantined) {
		t.Error("does not wrap errQuarantined")
	}
}
