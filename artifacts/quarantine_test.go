package artifacts

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/internal/wasmenc"
)

// otherModule is a valid module with a digest different from addModule's.
func otherModule() []byte {
	return wasmenc.Module(
		wasmtest.Types(wasmenc.FuncType([]byte{wasmenc.I64, wasmenc.I64}, []byte{wasmenc.I64})),
		wasmtest.Funcs(0),
		wasmtest.Exports(wasmtest.ExportFunc("sum", 0)),
		wasmtest.Code(wasmtest.Body(0x20, 0x00, 0x20, 0x01, 0x7c)),
	)
}

func (e *env) mustUpload(data []byte) *Artifact {
	e.t.Helper()
	a, err := e.upload(data)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// assertQuarantined checks the lock-free index, Get and the stored record
// of each id.
func (e *env) assertQuarantined(want bool, digest string, ids ...string) {
	e.t.Helper()
	if got := e.store.Quarantined(digest) != nil; got != want {
		e.t.Errorf("Quarantined(%s) = %v, want %v", digest, got, want)
	}
	for _, id := range ids {
		a, err := e.store.Get(e.ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		m, err := e.store.loadMeta(id)
		if err != nil {
			e.t.Fatal(err)
		}
		if got := a.Quarantine != nil; got != want {
			e.t.Errorf("Get(%s) quarantined = %v, want %v", id, got, want)
		}
		if got := m.Quarantine != nil; got != want {
			e.t.Errorf("stored record of %s quarantined = %v, want %v", id, got, want)
		}
	}
}

func TestQuarantineSurvivesRestartUntilRelease(t *testing.T) {
	e := newEnv(t, 0)
	a1 := e.mustUpload(wasmtest.Add())
	e.clock.Advance(time.Second)
	a2 := e.mustUpload(wasmtest.Add()) // same code, same digest
	other := e.mustUpload(otherModule())

	since := e.clock.Now()
	q := Quarantine{Since: since, Reason: "batch exceeded its deadline of 2s", Violations: 3}
	arts, err := e.store.Quarantine(e.ctx, a1.Digest, q)
	if err != nil || len(arts) != 2 {
		t.Fatalf("Quarantine = %v, %v; want both artifacts of the digest", arts, err)
	}
	e.assertQuarantined(true, a1.Digest, a1.ID, a2.ID)
	e.assertQuarantined(false, other.Digest, other.ID)

	// A second quarantine keeps the first one's facts.
	if _, err := e.store.Quarantine(e.ctx, a1.Digest, Quarantine{Since: since.Add(time.Hour), Reason: "later", Violations: 9}); err != nil {
		t.Fatal(err)
	}

	e.open(0) // restart
	e.assertQuarantined(true, a1.Digest, a1.ID, a2.ID)
	got, _ := e.store.Get(e.ctx, a2.ID)
	if got.Quarantine.Reason != q.Reason || got.Quarantine.Violations != 3 || !got.Quarantine.Since.Equal(since) {
		t.Errorf("after restart: %+v, want %+v", got.Quarantine, q)
	}
	// Uploading the same bytes again does not escape the quarantine.
	a3 := e.mustUpload(wasmtest.Add())
	e.assertQuarantined(true, a1.Digest, a3.ID)

	art, was, err := e.store.Release(e.ctx, a2.ID)
	if err != nil || !was || art.ID != a2.ID || art.Quarantine != nil {
		t.Fatalf("Release = %+v, %v, %v", art, was, err)
	}
	e.assertQuarantined(false, a1.Digest, a1.ID, a2.ID, a3.ID)
	e.open(0)
	e.assertQuarantined(false, a1.Digest, a1.ID, a2.ID, a3.ID)
	if _, was, err := e.store.Release(e.ctx, a2.ID); err != nil || was {
		t.Errorf("second Release: was %v, %v", was, err)
	}
}

func TestQuarantineErrors(t *testing.T) {
	e := newEnv(t, 0)
	a := e.mustUpload(wasmtest.Add())
	if _, err := e.store.Quarantine(e.ctx, "sha256:"+sha([]byte("nothing")), Quarantine{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Quarantine of an unknown digest: %v", err)
	}
	if _, _, err := e.store.Release(e.ctx, "art-0000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Release of an unknown artifact: %v", err)
	}
	if _, _, err := e.store.Release(e.ctx, "../"+a.ID); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Release of a bad id: %v", err)
	}
	// Deleting the last artifact of a digest forgets its quarantine.
	if _, err := e.store.Quarantine(e.ctx, a.Digest, Quarantine{Reason: "r", Violations: 3}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Delete(e.ctx, a.ID, "admin", ""); err != nil {
		t.Fatal(err)
	}
	if e.store.Quarantined(a.Digest) != nil {
		t.Error("quarantine outlived the last artifact of its digest")
	}
}

// TestQuarantineRepairedAfterCrash: a crash halfway through marking a
// digest's artifacts leaves some unmarked; New marks them all.
func TestQuarantineRepairedAfterCrash(t *testing.T) {
	e := newEnv(t, 0)
	a1 := e.mustUpload(wasmtest.Add())
	a2 := e.mustUpload(wasmtest.Add())
	before, err := os.ReadFile(filepath.Join(e.dir, "meta", a2.ID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Quarantine(e.ctx, a1.Digest, Quarantine{Reason: "r", Violations: 3}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "meta", a2.ID+".json"), before, 0o600); err != nil {
		t.Fatal(err)
	}
	e.open(0)
	e.assertQuarantined(true, a1.Digest, a1.ID, a2.ID)
}

func TestQuarantinedDoesNotAllocate(t *testing.T) {
	e := newEnv(t, 0)
	a := e.mustUpload(wasmtest.Add())
	if _, err := e.store.Quarantine(e.ctx, a.Digest, Quarantine{Reason: "r", Violations: 3}); err != nil {
		t.Fatal(err)
	}
	other := "sha256:" + sha([]byte("x"))
	if n := testing.AllocsPerRun(100, func() {
		if e.store.Quarantined(a.Digest) == nil || e.store.Quarantined(other) != nil {
			panic("wrong answer")
		}
	}); n != 0 {
		t.Errorf("Quarantined allocates %.1f times per call", n)
	}
}
