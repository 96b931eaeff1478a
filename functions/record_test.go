package functions

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/policies"
)

// recordFixtures are the functions stored in testdata/records, written by
// the registry before the SQL types and the ABI enum moved to package udf
// (when the records held the API's enum numbers and sandbox.ABI). Stored
// records are the host's state across restarts and upgrades: they must
// still load, and a function must still be written to the same bytes.
var recordFixtures = map[string]*Function{
	"default/add.json": {
		Name: "add", Org: "default", Env: "default", Pool: "default", ArtifactID: "art_0123456789abcdef",
		Digest: "sha256:ab12000000000000000000000000000000000000000000000000000000000000", Export: "add",
		Args: []udf.Type{udf.BigInt, udf.BigInt}, Result: udf.BigInt, ABI: udf.ABIDirect,
		CreatedAt: time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC),
	},
	"analytics/upper.json": {
		Name: "upper", Org: "default", Env: "analytics", Pool: "default", ArtifactID: "art_fedcba9876543210",
		Digest: "sha256:cd34000000000000000000000000000000000000000000000000000000000000", Export: "upper",
		Args: []udf.Type{udf.Varchar}, Result: udf.Varchar, ABI: udf.ABIBatch,
		CreatedAt: time.Date(2026, 11, 30, 12, 0, 1, 0, time.UTC),
	},
}

func TestStoredRecordsLoad(t *testing.T) {
	r, err := OpenRegistry("testdata/records")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range recordFixtures {
		got, err := r.Get(want.Env, want.Name)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s loads as %+v, want %+v", path, got, want)
		}
	}
}

func TestRecordsWrittenAsBefore(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	r, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	for path, f := range recordFixtures {
		if err := r.Create(ctx, f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		got, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("testdata/records", path))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s written as\n%s\nwant (the format stored records have)\n%s", path, got, want)
		}
	}
}

// TestVisibilityRecorded: a function created in a private environment
// keeps its visibility across a reopen; the old records above, which have
// none, load with none (public) and are written without the field.
func TestVisibilityRecorded(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	r, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := *recordFixtures["analytics/upper.json"]
	f.Env, f.Visibility = "payments", policies.Private
	if err := r.Create(ctx, &f); err != nil {
		t.Fatal(err)
	}
	if r, err = OpenRegistry(dir); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get("payments", "upper")
	if err != nil {
		t.Fatal(err)
	}
	if got.Visibility != policies.Private {
		t.Errorf("reopened function has visibility %q, want private", got.Visibility)
	}
	for path, want := range recordFixtures {
		if want.Visibility != "" {
			t.Errorf("%s: fixture has visibility %q; old records have none", path, want.Visibility)
		}
	}
}
