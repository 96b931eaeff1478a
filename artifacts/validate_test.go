package artifacts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

func TestValidate(t *testing.T) {
	ctx := context.Background()
	add := addModule()
	cases := []struct {
		name     string
		data     []byte
		sentinel error
		msg      string
	}{
		{"empty", nil, ErrInvalidModule, "truncated"},
		{"partial magic", []byte{0, 'a', 's'}, ErrInvalidModule, "truncated"},
		{"bad magic short", []byte("ELF"), ErrInvalidModule, "bad magic"},
		{"bad magic", []byte("\x7fELF\x02\x01\x01\x00\x00\x00"), ErrInvalidModule, "not a WebAssembly module (bad magic)"},
		{"header only 6", add[:6], ErrInvalidModule, "truncated"},
		{"component", []byte{0, 'a', 's', 'm', 0x0d, 0x00, 0x01, 0x00}, ErrInvalidModule, "version"},
		{"section past end", append(add[:8:8], 0x01, 0x7f), ErrInvalidModule, ""},
		{"cut in code", add[:len(add)-1], ErrInvalidModule, ""},
		{"header only", add[:8], ErrInvalidModule, "exports no functions"},
		{"no exports", noExportModule(), ErrInvalidModule, "exports no functions"},
		{"half ABI", halfABIModule(), ErrInvalidModule, "udfhost_abi_version but not udfhost_alloc"},
		{"ABI signature", badABISigModule(), ErrInvalidModule, "udfhost_alloc must have type (i32) -> i32"},
		{"env import", importFuncModule("env", "system", []byte{tI32}, []byte{tI32}), ErrDisallowedImport, "env.system"},
		{"sock_accept", importFuncModule("wasi_snapshot_preview1", "sock_accept", []byte{tI32, tI32, tI32}, []byte{tI32}), ErrDisallowedImport, "wasi_snapshot_preview1.sock_accept"},
		{"sock_send", importFuncModule("wasi_snapshot_preview1", "sock_send", nil, nil), ErrDisallowedImport, "sock_send"},
		{"unknown wasi", importFuncModule("wasi_snapshot_preview1", "no_such_call", nil, nil), ErrDisallowedImport, "no such function"},
		{"wasi wrong type", importFuncModule("wasi_snapshot_preview1", "fd_write", nil, nil), ErrInvalidModule, "fd_write is imported as () -> ()"},
		{"memory", importOtherModule("wasi_snapshot_preview1", "mem", memoryDesc), ErrDisallowedImport, "memory imports are not allowed"},
		{"global", importOtherModule("wasi_snapshot_preview1", "g", globalDesc), ErrDisallowedImport, "global imports are not allowed"},
		{"table", importOtherModule("wasi_snapshot_preview1", "t", tableDesc), ErrDisallowedImport, "table imports are not allowed"},
		{"hostile name", importFuncModule("env\n\"x", "y", nil, nil), ErrDisallowedImport, `"env\n\"x.y"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(ctx, tc.data, KindUDF, nil, nil)
			wantErr(t, err, tc.sentinel, tc.msg)
			if _, err := Validate(ctx, tc.data, KindConnector, nil, nil); !errors.Is(err, tc.sentinel) {
				t.Fatalf("connector: %v", err)
			}
		})
	}
	if _, err := Validate(ctx, add, "plugin", nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestValidateWithCache(t *testing.T) {
	ctx := context.Background()
	cache := wazero.NewCompilationCache()
	defer cache.Close(ctx)
	for range 2 {
		info, err := Validate(ctx, batchModule(), KindUDF, cache, nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.ABIVersion != 1 || len(info.Exports) != 3 {
			t.Fatalf("%+v", info)
		}
	}
}

func TestParseImports(t *testing.T) {
	got, err := ParseImports(fdWriteModule())
	if err != nil {
		t.Fatal(err)
	}
	if want := []RawImport{{Module: "wasi_snapshot_preview1", Name: "fd_write", Kind: 0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v", got)
	}
	for name, desc := range map[string][]byte{"memory": memoryDesc, "global": globalDesc, "table": tableDesc} {
		got, err := ParseImports(importOtherModule("m", "n", desc))
		if err != nil || len(got) != 1 || got[0].KindName() != name {
			t.Fatalf("%s: %+v %v", name, got, err)
		}
	}
	// Every prefix of a module with imports either parses or fails cleanly.
	full := importOtherModule("env", "t", tableDesc)
	for i := range full {
		_, _ = ParseImports(full[:i])
	}
	bad := map[string][]byte{
		"huge count": wasmModule(section(2, leb(0xffffffff))),
		"long leb":   wasmModule(section(2, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01})),
		"bad kind":   wasmModule(section(2, vec(cat(str("a"), str("b"), []byte{0x09, 0x00})))),
		"bad utf8":   wasmModule(section(2, vec(cat(str("\xff"), str("b"), []byte{0x00, 0x00})))),
		"trailing":   wasmModule(section(2, vec(cat(str("a"), str("b"), []byte{0x00, 0x00})), []byte{0x00})),
		"name past":  wasmModule(section(2, []byte{0x01, 0x7f})),
	}
	for name, b := range bad {
		if _, err := ParseImports(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// FuzzValidate feeds arbitrary bytes to Validate: it must not panic, must
// answer quickly, and must classify every failure.
func FuzzValidate(f *testing.F) {
	add := addModule()
	for _, seed := range [][]byte{
		add, batchModule(), fdWriteModule(), halfABIModule(), noExportModule(),
		importFuncModule("env", "system", []byte{tI32}, []byte{tI32}),
		importOtherModule("env", "t", tableDesc),
		add[:8], add[:len(add)/2], add[:len(add)-1], add[:3],
		nil, []byte("not wasm at all"), []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{0x8b, 0x1f, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x42, 0x13, 0x37},
		// test/hostile's huge_table and (smaller, as fuzzing minimizes
		// every mutation it keeps) nested_blocks, and what the walk over
		// function bodies reads.
		hugeTableModule(), codeModule(0, nestedBlocks(maxControlDepth+1)),
		opcodeModule(instrCases()["table bulk"], false), opcodeModule(instrCases()["v128 lanes"], false),
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		info, err := Validate(ctx, data, KindUDF, nil, nil)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Validate took %s for %d bytes", d, len(data))
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidModule) && !errors.Is(err, ErrDisallowedImport) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(info.Exports) == 0 {
			t.Fatal("accepted a module without exports")
		}
		for _, imp := range info.Imports {
			if !strings.HasPrefix(imp, WASIModule+".") || strings.HasPrefix(imp, WASIModule+".sock_") {
				t.Fatalf("accepted import %s", imp)
			}
		}
	})
}

// TestHostileCounts: counts and lengths that are not backed by bytes (or are
// over the limits) must be refused before wazero sees them; wazero sizes
// allocations from them and would exhaust memory.
func TestHostileCounts(t *testing.T) {
	ctx := context.Background()
	huge := leb(0xffffffff)
	oneFunc := func(sections ...[]byte) []byte {
		// A valid type/function/export prefix so only the hostile part is wrong.
		return wasmModule(append([][]byte{
			section(1, vec(funcType(nil, nil))),
			section(3, vec(leb(0))),
			section(7, vec(exportFunc("f", 0))),
		}, sections...)...)
	}
	cases := map[string][]byte{
		// Found by FuzzValidate: 15 bytes that made wazero allocate ~480 GB.
		"import count":       wasmModule(section(2, leb(0xfffffff7))),
		"function count":     wasmModule(section(1, vec(funcType(nil, nil))), section(3, huge)),
		"type params":        wasmModule(section(1, vec(cat([]byte{0x60}, huge)))),
		"too many params":    wasmModule(section(1, vec(cat([]byte{0x60}, leb(1001), make([]byte, 1001), leb(0))))),
		"global count":       wasmModule(section(6, huge)),
		"export count":       wasmModule(section(7, huge)),
		"export name length": wasmModule(section(7, vec(cat(huge, []byte{0x00, 0x00})))),
		"import name length": wasmModule(section(2, vec(cat(huge, str("x"), []byte{0x00, 0x00})))),
		"element count":      wasmModule(section(9, huge)),
		"element vector": oneFunc(
			section(9, vec(cat(leb(0), []byte{0x41, 0x00, 0x0b}, huge))),
			section(10, vec(body())),
		),
		"code count":     wasmModule(section(10, huge)),
		"code body size": oneFunc(section(10, vec(cat(leb(maxFunctionSize+1), []byte{0x00, 0x0b})))),
		"locals": oneFunc(section(10, vec(func() []byte {
			code := cat(leb(1), leb(0xffffffff), []byte{tI32, 0x0b}) // 4 billion i32 locals
			return cat(leb(uint32(len(code))), code)
		}()))),
		"data count":         wasmModule(section(11, huge)),
		"data length":        wasmModule(section(5, vec([]byte{0x00, 0x01})), section(11, vec(cat(leb(1), huge)))),
		"custom name length": wasmModule(section(0, huge)),
		"name section function names": oneFunc(
			section(10, vec(body())),
			section(0, str("name"), []byte{0x01}, leb(5), huge),
		),
		"name section local names": oneFunc(
			section(10, vec(body())),
			section(0, str("name"), []byte{0x02}, leb(7), leb(1), leb(0), huge),
		),
		"name subsection size lies": oneFunc(
			section(10, vec(body())),
			section(0, str("name"), []byte{0x01}, leb(9), vec(cat(leb(0), str("f")))), // contents are 4 bytes, not 9
		),
		"section size past end": cat(wasmModule(), []byte{0x01}, huge),
		"table count":           wasmModule(section(4, huge)),
		"tag count":             wasmModule(section(13, huge)),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Validate(ctx, data, KindUDF, nil, nil)
			if !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("err = %v, want ErrInvalidModule", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
}

func TestScanAcceptsValidModules(t *testing.T) {
	// A name section like toolchains emit must pass the scan and compile.
	m := cat(addModule(),
		section(0, str("name"),
			[]byte{0x00}, leb(4), str("mod"), // module name "mod": 1+3 bytes
			[]byte{0x01}, leb(6), vec(cat(leb(0), str("add"))),
			[]byte{0x02}, leb(9), vec(cat(leb(0), vec(cat(leb(0), str("a")), cat(leb(1), str("b"))))),
		),
		section(0, str("producers"), []byte{0x00}),
	)
	info, err := Validate(context.Background(), m, KindUDF, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Exports) != 1 {
		t.Fatalf("%+v", info)
	}
}

// TestDescribeAgreesWithValidate: what Describe finds without compiling
// (the Store's view when the compile runs in a jailed worker) is what
// Validate finds after wazero decoded and compiled the module: the same
// Info for every module that compiles, among them every example and
// hostile module built by make examples hostile, and the same error for
// every module refused for its imports, exports or ABI.
func TestDescribeAgreesWithValidate(t *testing.T) {
	ctx := context.Background()
	mods := map[string][]byte{
		"add": addModule(), "batch": batchModule(), "fd_write": fdWriteModule(),
		"half ABI": halfABIModule(), "ABI signature": badABISigModule(), "no exports": noExportModule(),
		"env import":      importFuncModule("env", "system", []byte{tI32}, []byte{tI32}),
		"wasi wrong type": importFuncModule("wasi_snapshot_preview1", "fd_write", nil, nil),
		"unknown wasi":    importFuncModule("wasi_snapshot_preview1", "no_such_call", nil, nil),
		"memory":          importOtherModule("wasi_snapshot_preview1", "mem", memoryDesc),
	}
	for _, dir := range []string{"../bin/examples", "../bin/hostile"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.wasm"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			mods[f] = b
		}
	}
	if len(mods) < 20 {
		t.Log("examples not built (make examples hostile): checking the hand-made modules only")
	}
	for name, m := range mods {
		t.Run(filepath.Base(name), func(t *testing.T) {
			vinfo, verr := Validate(ctx, m, KindUDF, nil, nil)
			dinfo, derr := Describe(ctx, m, KindUDF)
			switch {
			case verr == nil && derr == nil:
				if !reflect.DeepEqual(vinfo, dinfo) {
					t.Fatalf("Validate %+v, Describe %+v", vinfo, dinfo)
				}
			case derr != nil:
				if verr == nil || verr.Error() != derr.Error() {
					t.Fatalf("Describe refused what Validate says: %v / %v", derr, verr)
				}
			default:
				// Only the compile finds this one (a body that does
				// not type-check, say): the jailed compile refuses it.
				if !errors.Is(verr, ErrInvalidModule) {
					t.Fatalf("Validate: %v", verr)
				}
			}
		})
	}
}

// TestDescribeRefusesBadIndices: an export or import naming a function or
// type that does not exist, and duplicate export names, are refused by
// Describe itself, without a compile.
func TestDescribeRefusesBadIndices(t *testing.T) {
	cases := map[string]struct {
		m   []byte
		msg string
	}{
		"export past the functions": {wasmModule(
			section(1, vec(funcType(nil, nil))),
			section(3, vec(leb(0))),
			section(7, vec(exportFunc("f", 5))),
			section(10, vec(body())),
		), "function index 5 out of range"},
		"function of no type": {wasmModule(
			section(1, vec(funcType(nil, nil))),
			section(3, vec(leb(3))),
			section(7, vec(exportFunc("f", 0))),
			section(10, vec(body())),
		), "type index 3 out of range"},
		"duplicate export": {wasmModule(
			section(1, vec(funcType(nil, nil))),
			section(3, vec(leb(0))),
			section(7, vec(exportFunc("f", 0), exportFunc("f", 0))),
			section(10, vec(body())),
		), "duplicate export name f"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Describe(context.Background(), tc.m, KindUDF)
			wantErr(t, err, ErrInvalidModule, tc.msg)
			if _, err := Validate(context.Background(), tc.m, KindUDF, nil, nil); !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}
