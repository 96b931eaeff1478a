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

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/internal/wasmenc"
)

func TestValidate(t *testing.T) {
	ctx := context.Background()
	add := wasmtest.Add()
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
		{"no exports", wasmtest.NoExport(), ErrInvalidModule, "exports no functions"},
		{"half ABI", wasmtest.HalfABI(), ErrInvalidModule, "udfhost_abi_version but not udfhost_alloc"},
		{"ABI signature", wasmtest.BadABISig(), ErrInvalidModule, "udfhost_alloc must have type (i32) -> i32"},
		{"env import", wasmtest.ImportFunc("env", "system", []byte{wasmenc.I32}, []byte{wasmenc.I32}), ErrDisallowedImport, "env.system"},
		{"sock_accept", wasmtest.ImportFunc("wasi_snapshot_preview1", "sock_accept", []byte{wasmenc.I32, wasmenc.I32, wasmenc.I32}, []byte{wasmenc.I32}), ErrDisallowedImport, "wasi_snapshot_preview1.sock_accept"},
		{"sock_send", wasmtest.ImportFunc("wasi_snapshot_preview1", "sock_send", nil, nil), ErrDisallowedImport, "sock_send"},
		{"unknown wasi", wasmtest.ImportFunc("wasi_snapshot_preview1", "no_such_call", nil, nil), ErrDisallowedImport, "no such function"},
		{"wasi wrong type", wasmtest.ImportFunc("wasi_snapshot_preview1", "fd_write", nil, nil), ErrInvalidModule, "fd_write is imported as () -> ()"},
		{"memory", wasmtest.ImportOther("wasi_snapshot_preview1", "mem", wasmtest.MemoryDesc()), ErrDisallowedImport, "memory imports are not allowed"},
		{"global", wasmtest.ImportOther("wasi_snapshot_preview1", "g", wasmtest.GlobalDesc()), ErrDisallowedImport, "global imports are not allowed"},
		{"table", wasmtest.ImportOther("wasi_snapshot_preview1", "t", wasmtest.TableDesc()), ErrDisallowedImport, "table imports are not allowed"},
		{"hostile name", wasmtest.ImportFunc("env\n\"x", "y", nil, nil), ErrDisallowedImport, `"env\n\"x.y"`},
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
		info, err := Validate(ctx, wasmtest.Batch(), KindUDF, cache, nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.ABIVersion != 1 || len(info.Exports) != 3 {
			t.Fatalf("%+v", info)
		}
	}
}

// FuzzValidate feeds arbitrary bytes to Validate: it must not panic, must
// answer quickly, and must classify every failure.
func FuzzValidate(f *testing.F) {
	add := wasmtest.Add()
	for _, seed := range [][]byte{
		add, wasmtest.Batch(), wasmtest.FDWrite(), wasmtest.HalfABI(), wasmtest.NoExport(),
		wasmtest.ImportFunc("env", "system", []byte{wasmenc.I32}, []byte{wasmenc.I32}),
		wasmtest.ImportOther("env", "t", wasmtest.TableDesc()),
		add[:8], add[:len(add)/2], add[:len(add)-1], add[:3],
		nil, []byte("not wasm at all"), []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{0x8b, 0x1f, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x42, 0x13, 0x37},
		// test/hostile's huge_table and (smaller, as fuzzing minimizes
		// every mutation it keeps) nested_blocks, and what the walk over
		// function bodies reads.
		wasmtest.HugeTable(), wasmtest.OneFunc(0, wasmtest.NestedBlocks(10_001)), // one deeper than the scan allows
		wasmtest.Opcodes(wasmtest.InstrCases()["table bulk"], false), wasmtest.Opcodes(wasmtest.InstrCases()["v128 lanes"], false),
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

// TestDescribeAgreesWithValidate: what Describe finds without compiling
// (the Store's view when the compile runs in a jailed worker) is what
// Validate finds after wazero decoded and compiled the module: the same
// Info for every module that compiles, among them every example and
// hostile module built by make examples hostile, and the same error for
// every module refused for its imports, exports or ABI.
func TestDescribeAgreesWithValidate(t *testing.T) {
	ctx := context.Background()
	mods := map[string][]byte{
		"add": wasmtest.Add(), "batch": wasmtest.Batch(), "fd_write": wasmtest.FDWrite(),
		"half ABI": wasmtest.HalfABI(), "ABI signature": wasmtest.BadABISig(), "no exports": wasmtest.NoExport(),
		"env import":      wasmtest.ImportFunc("env", "system", []byte{wasmenc.I32}, []byte{wasmenc.I32}),
		"wasi wrong type": wasmtest.ImportFunc("wasi_snapshot_preview1", "fd_write", nil, nil),
		"unknown wasi":    wasmtest.ImportFunc("wasi_snapshot_preview1", "no_such_call", nil, nil),
		"memory":          wasmtest.ImportOther("wasi_snapshot_preview1", "mem", wasmtest.MemoryDesc()),
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
		"export past the functions": {wasmenc.Module(
			wasmtest.Types(wasmenc.FuncType(nil, nil)),
			wasmtest.Funcs(0),
			wasmtest.Exports(wasmtest.ExportFunc("f", 5)),
			wasmtest.Code(wasmtest.Body()),
		), "function index 5 out of range"},
		"function of no type": {wasmenc.Module(
			wasmtest.Types(wasmenc.FuncType(nil, nil)),
			wasmtest.Funcs(3),
			wasmtest.Exports(wasmtest.ExportFunc("f", 0)),
			wasmtest.Code(wasmtest.Body()),
		), "type index 3 out of range"},
		"duplicate export": {wasmenc.Module(
			wasmtest.Types(wasmenc.FuncType(nil, nil)),
			wasmtest.Funcs(0),
			wasmtest.Exports(wasmtest.ExportFunc("f", 0), wasmtest.ExportFunc("f", 0)),
			wasmtest.Code(wasmtest.Body()),
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

func BenchmarkValidateGoGuest(b *testing.B) {
	wasm := wasmtest.GoGuest(b)
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := Validate(context.Background(), wasm, KindUDF, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConnectorsMayImportHTTP: udfhost_http, the egress broker's import
// module, is open to connector artifacts only, function by function and
// with the types the worker implements; WASI imports beside it are still
// checked against WASI.
func TestConnectorsMayImportHTTP(t *testing.T) {
	ctx := context.Background()
	i32, i64 := wasmenc.I32, wasmenc.I64
	request := wasmtest.ImportFunc(HTTPModule, "request", []byte{i32, i32, i32, i32}, []byte{i64})
	info, err := Validate(ctx, request, KindConnector, nil, nil)
	if err != nil {
		t.Fatalf("connector importing udfhost_http.request: %v", err)
	}
	if !reflect.DeepEqual(info.Imports, []string{"udfhost_http.request"}) {
		t.Errorf("imports %v", info.Imports)
	}
	_, err = Validate(ctx, request, KindUDF, nil, nil)
	wantErr(t, err, ErrDisallowedImport, `udfhost_http.request (function): udf artifacts may import only from wasi_snapshot_preview1`)

	// Both modules, WASI's fd_write second: the function indices of the
	// two kinds of import are kept apart.
	both := wasmenc.Module(
		wasmtest.Types(wasmenc.FuncType([]byte{i32, i32, i32, i32}, []byte{i64}), wasmenc.FuncType([]byte{i32, i32, i32, i32}, []byte{i32}), wasmenc.FuncType(nil, nil)),
		wasmenc.Section(wasmenc.SecImport, wasmenc.Vec(
			wasmenc.Import(HTTPModule, "request", wasmenc.ExternFunc, wasmenc.ULEB128(0)),
			wasmenc.Import(WASIModule, "fd_write", wasmenc.ExternFunc, wasmenc.ULEB128(1)))),
		wasmtest.Funcs(2),
		wasmtest.Exports(wasmtest.ExportFunc("f", 2)),
		wasmtest.Code(wasmtest.Body()),
	)
	if _, err := Validate(ctx, both, KindConnector, nil, nil); err != nil {
		t.Errorf("connector importing udfhost_http.request and fd_write: %v", err)
	}

	for _, tc := range []struct {
		name     string
		data     []byte
		sentinel error
		msg      string
	}{
		{"every function", wasmtest.ImportFunc(HTTPModule, "response_read", []byte{i32, i32, i32}, []byte{i32}), nil, ""},
		{"response_headers", wasmtest.ImportFunc(HTTPModule, "response_headers", []byte{i32, i32}, []byte{i32}), nil, ""},
		{"last_error", wasmtest.ImportFunc(HTTPModule, "last_error", []byte{i32, i32}, []byte{i32}), nil, ""},
		{"unknown function", wasmtest.ImportFunc(HTTPModule, "connect", []byte{i32}, []byte{i32}), ErrDisallowedImport, `udfhost_http.connect: no such function in udfhost_http`},
		{"wrong type", wasmtest.ImportFunc(HTTPModule, "request", []byte{i32, i32}, []byte{i64}), ErrInvalidModule, `udfhost_http.request is imported as (i32, i32) -> (i64) but has type (i32, i32, i32, i32) -> (i64)`},
		{"memory", wasmtest.ImportOther(HTTPModule, "request", wasmtest.MemoryDesc()), ErrDisallowedImport, "memory imports are not allowed"},
		{"other module", wasmtest.ImportFunc("udfhost_tcp", "dial", nil, nil), ErrDisallowedImport, "connector artifacts may import only from wasi_snapshot_preview1 and udfhost_http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(ctx, tc.data, KindConnector, nil, nil)
			if tc.sentinel == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tc.sentinel, tc.msg)
		})
	}
}
