package functions

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/internal/udf"
)

func TestParseSignature(t *testing.T) {
	tests := []struct {
		in      string
		args    []udf.Type
		result  udf.Type
		wantErr string
	}{
		{in: "(BIGINT, BIGINT) -> BIGINT", args: []udf.Type{udf.BigInt, udf.BigInt}, result: udf.BigInt},
		{in: "( varchar )->boolean", args: []udf.Type{udf.Varchar}, result: udf.Boolean},
		{in: "() -> DOUBLE", result: udf.Double},
		{in: "(INTEGER, STRING) -> INT", args: []udf.Type{udf.Int, udf.Varchar}, result: udf.Int},
		{in: "BIGINT -> BIGINT", wantErr: "parentheses"},
		{in: "(BIGINT, BIGINT)", wantErr: "want \"(ARG"},
		{in: "(BIGINT, DECIMAL) -> BIGINT", wantErr: "argument 2: unknown type \"DECIMAL\""},
		{in: "(BIGINT,) -> BIGINT", wantErr: "argument 2: unknown type \"\""},
		{in: "(BIGINT) -> MAP", wantErr: "result: unknown type"},
	}
	for _, tc := range tests {
		args, result, err := ParseSignature(tc.in)
		if tc.wantErr != "" {
			if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSignature(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(args, tc.args) || result != tc.result {
			t.Errorf("ParseSignature(%q) = %v, %v, %v", tc.in, args, result, err)
		}
		if again, _, _ := ParseSignature(FormatSignature(args, result)); !slices.Equal(again, args) {
			t.Errorf("FormatSignature does not round-trip %q", tc.in)
		}
	}
}

func TestChooseABI(t *testing.T) {
	direct := &artifacts.Artifact{ID: "art-d", Exports: []artifacts.Export{
		{Name: "add", Params: []string{"i64", "i64"}, Results: []string{"i64"}},
		{Name: "pick", Params: []string{"i32", "i32"}, Results: []string{"i64"}},
	}}
	sdk := &artifacts.Artifact{ID: "art-b", ABIVersion: 1, Exports: []artifacts.Export{
		{Name: "upper", Params: []string{"i32", "i32"}, Results: []string{"i64"}},
	}}
	tests := []struct {
		name    string
		art     *artifacts.Artifact
		export  string
		sig     string
		want    udf.ABI
		abi     udf.ABI
		wantErr string
	}{
		{"direct by default", direct, "add", "(BIGINT, BIGINT) -> BIGINT", 0, udf.ABIDirect, ""},
		{"batch shape without SDK stays direct", direct, "pick", "(INT, INT) -> BIGINT", 0, udf.ABIDirect, ""},
		{"SDK module is batch", sdk, "upper", "(VARCHAR) -> VARCHAR", 0, udf.ABIBatch, ""},
		{"forced direct on SDK module", sdk, "upper", "(INT, INT) -> BIGINT", udf.ABIDirect, udf.ABIDirect, ""},
		{"mismatch names both", direct, "add", "(INT, BIGINT) -> BIGINT", 0, 0, "wasm type (i32, i64) -> i64, but it has (i64, i64) -> i64"},
		{"varchar in direct", direct, "add", "(VARCHAR, BIGINT) -> BIGINT", udf.ABIDirect, 0, "direct ABI cannot pass"},
		{"batch without SDK", direct, "pick", "(VARCHAR) -> VARCHAR", udf.ABIBatch, 0, "does not implement the batch ABI"},
		{"missing export", direct, "sub", "(BIGINT) -> BIGINT", 0, 0, "no export \"sub\" (exports: add, pick)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args, result, err := ParseSignature(tc.sig)
			if err != nil {
				t.Fatal(err)
			}
			abi, err := ChooseABI(tc.art, tc.export, args, result, tc.want)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || abi != tc.abi {
				t.Fatalf("ChooseABI = %v, %v; want %v", abi, err, tc.abi)
			}
		})
	}
}

func TestRegistryPersists(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	r, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &Function{Name: "add", Env: "default", Pool: "default", ArtifactID: "art-1", Export: "add",
		Args: []udf.Type{udf.BigInt, udf.BigInt}, Result: udf.BigInt, ABI: udf.ABIDirect}
	if err := r.Create(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := r.Create(ctx, f); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	if err := r.Create(ctx, &Function{Name: "../evil", Env: "default"}); !errors.Is(err, ErrName) {
		t.Errorf("bad name: %v, want ErrName", err)
	}
	r2, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r2.Get("default", "add")
	if err != nil || got.Signature() != "(BIGINT, BIGINT) -> BIGINT" {
		t.Fatalf("after reopen: %v, %v", got, err)
	}
	if _, err := r2.Delete(ctx, "default", "add"); err != nil {
		t.Fatal(err)
	}
	r3, _ := OpenRegistry(dir)
	if _, err := r3.Get("default", "add"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted function still there: %v", err)
	}
}

// TestReserve: a reserved name is taken but not visible; commit makes it
// visible and stored, cancel frees it.
func TestReserve(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	r, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &Function{Name: "f", Env: "default", Args: []udf.Type{udf.BigInt}, Result: udf.BigInt}
	_, cancel, err := r.Reserve(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Reserve(f); !errors.Is(err, ErrExists) {
		t.Errorf("second reserve: %v, want ErrExists", err)
	}
	if _, err := r.Get("default", "f"); !errors.Is(err, ErrNotFound) {
		t.Errorf("reserved function visible: %v", err)
	}
	cancel()
	commit, _, err := r.Reserve(f)
	if err != nil {
		t.Fatalf("reserve after cancel: %v", err)
	}
	if err := commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("default", "f"); err != nil {
		t.Errorf("committed function: %v", err)
	}
	if r2, _ := OpenRegistry(dir); len(r2.List("")) != 1 {
		t.Error("committed function not stored")
	}
	if _, _, err := r.Reserve(f); !errors.Is(err, ErrExists) {
		t.Errorf("reserve of a stored name: %v, want ErrExists", err)
	}
	for _, bad := range []struct{ env, name string }{{"default", "../x"}, {"../x", "f"}, {"default", strings.Repeat("a", 1<<20)}} {
		if _, err := r.Get(bad.env, bad.name); !errors.Is(err, ErrName) || len(err.Error()) > 200 {
			t.Errorf("Get(%.20q, %.20q) = %.200v, want a short ErrName", bad.env, bad.name, err)
		}
		if _, _, err := r.Reserve(&Function{Env: bad.env, Name: bad.name}); !errors.Is(err, ErrName) {
			t.Errorf("Reserve(%.20q, %.20q) = %.200v, want ErrName", bad.env, bad.name, err)
		}
	}
}
