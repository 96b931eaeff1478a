package artifacts

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/policies"
)

// TestOldRecordIsPublic: an artifact record written before artifacts had
// a visibility (testdata/meta) loads with none, which a server reads as
// public; the store does not rewrite it.
func TestOldRecordIsPublic(t *testing.T) {
	e := newEnv(t, 0)
	fixture := filepath.Join("testdata", "meta", "art-0123456789abcdef.json")
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	// The object too, or New would take the record for a torn commit's.
	for path, data := range map[string][]byte{
		e.store.metaPath("art-0123456789abcdef"):                                               b,
		e.store.objectPath("ab12000000000000000000000000000000000000000000000000000000000000"): []byte("x"),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.open(0)
	art, err := e.store.Get(e.ctx, "art-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if art.Visibility != "" || art.Env != "default" || art.Name != "" {
		t.Errorf("old record loads as %+v, want env default and no visibility", art)
	}
	after, _ := os.ReadFile(e.store.metaPath("art-0123456789abcdef"))
	if string(after) != string(b) {
		t.Errorf("opening the store rewrote the old record:\n%s", after)
	}
}

// TestUploadBinding: the network and visibility an upload URL was issued
// with are what UploadOf answers and what the artifact keeps; an upload
// that does not exist is MissingUpload's error, an artifact MissingArtifact's.
func TestUploadBinding(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	up, err := e.store.CreateUpload(e.ctx, UploadRequest{
		Env: "payments", Size: int64(len(data)), SHA256: sha(data), Actor: "tm",
		Network: "payments-link", Visibility: policies.Private,
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.store.UploadOf(e.ctx, up.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := (UploadInfo{ID: up.ID, Env: "payments", Network: "payments-link", Visibility: policies.Private}); info != want {
		t.Errorf("UploadOf = %+v, want %+v", info, want)
	}
	e.putOK(up, data)
	art, err := e.store.Commit(e.ctx, up.ID, "tm", "")
	if err != nil {
		t.Fatal(err)
	}
	e.open(0) // from disk
	got, err := e.store.Get(e.ctx, art.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Visibility != policies.Private || got.Env != "payments" {
		t.Errorf("artifact %+v, want private in payments", got)
	}

	const absentUp, absentArt = "up-00000000000000aa", "art-00000000000000aa"
	if _, err := e.store.UploadOf(e.ctx, absentUp); err == nil || err.Error() != MissingUpload(absentUp).Error() || !errors.Is(err, ErrNotFound) {
		t.Errorf("UploadOf(absent) = %v, want %v", err, MissingUpload(absentUp))
	}
	if _, err := e.store.Commit(e.ctx, absentUp, "tm", ""); err == nil || err.Error() != MissingUpload(absentUp).Error() {
		t.Errorf("Commit(absent) = %v, want %v", err, MissingUpload(absentUp))
	}
	if _, err := e.store.Get(e.ctx, absentArt); err == nil || err.Error() != MissingArtifact(absentArt).Error() || !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(absent) = %v, want %v", err, MissingArtifact(absentArt))
	}
}
