package wasmenc

import (
	"bytes"
	"encoding/binary"
	"go/parser"
	"go/token"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestULEB128(t *testing.T) {
	for _, v := range []uint32{0, 1, 63, 64, 127, 128, 300, 1 << 14, 1<<21 - 1, 1 << 28, math.MaxUint32} {
		// Go's unsigned varint is unsigned LEB128.
		if got, want := ULEB128(v), binary.AppendUvarint(nil, uint64(v)); !bytes.Equal(got, want) {
			t.Errorf("ULEB128(%d) = % x, want % x", v, got, want)
		}
	}
}

func TestSLEB128(t *testing.T) {
	cases := []struct {
		v    int32
		want []byte
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{-1, []byte{0x7f}},
		{63, []byte{0x3f}},
		{64, []byte{0xc0, 0x00}},
		{-64, []byte{0x40}},
		{-65, []byte{0xbf, 0x7f}},
		{1024, []byte{0x80, 0x08}},
		{math.MaxInt32, []byte{0xff, 0xff, 0xff, 0xff, 0x07}},
		{math.MinInt32, []byte{0x80, 0x80, 0x80, 0x80, 0x78}},
	}
	for _, tc := range cases {
		if got := SLEB128(tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("SLEB128(%d) = % x, want % x", tc.v, got, tc.want)
		}
	}
}

// TestModule: a module written with the package is the one the
// specification's binary format gives for
//
//	(module
//	  (import "m" "f" (func (param i32)))
//	  (func (export "add") (param i64 i64) (result i64) (local i32)
//	    local.get 0 local.get 1 i64.add))
func TestModule(t *testing.T) {
	got := Module(
		Section(SecType, Vec(FuncType([]byte{I32}, nil), FuncType([]byte{I64, I64}, []byte{I64}))),
		Section(SecImport, Vec(Import("m", "f", ExternFunc, ULEB128(0)))),
		Section(SecFunction, Vec(ULEB128(1))),
		Section(SecExport, Vec(Export("add", ExternFunc, 1))),
		Section(SecCode, Vec(Body([]Local{{1, I32}}, []byte{0x20, 0x00, 0x20, 0x01, 0x7c, OpEnd}))),
		Custom("n", []byte{0xaa}),
	)
	want := []byte{
		0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00,
		0x01, 0x0b, 0x02, 0x60, 0x01, 0x7f, 0x00, 0x60, 0x02, 0x7e, 0x7e, 0x01, 0x7e,
		0x02, 0x07, 0x01, 0x01, 'm', 0x01, 'f', 0x00, 0x00,
		0x03, 0x02, 0x01, 0x01,
		0x07, 0x07, 0x01, 0x03, 'a', 'd', 'd', 0x00, 0x01,
		0x0a, 0x0b, 0x01, 0x09, 0x01, 0x01, 0x7f, 0x20, 0x00, 0x20, 0x01, 0x7c, 0x0b,
		0x00, 0x03, 0x01, 'n', 0xaa,
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got\n% x\nwant\n% x", got, want)
	}
	if h := Module(); !bytes.Equal(h, want[:8]) {
		t.Fatalf("header % x", h)
	}
	if b := Body(nil); !bytes.Equal(b, []byte{0x01, 0x00}) {
		t.Fatalf("empty body % x", b)
	}
	if r := Rep(3, 0x02, 0x40); !bytes.Equal(r, []byte{0x02, 0x40, 0x02, 0x40, 0x02, 0x40}) {
		t.Fatalf("Rep % x", r)
	}
}

// TestStandardLibraryOnly: the encoder is linked into the jailed worker
// and the tools alike; it must stay free of the project's packages and of
// anything outside the standard library.
func TestStandardLibraryOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			if path := strings.Trim(imp.Path.Value, `"`); strings.Contains(strings.Split(path, "/")[0], ".") {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
