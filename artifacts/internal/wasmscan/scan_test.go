package wasmscan

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/internal/wasmenc"
)

// scanAndCompile checks that m passes the scan and compiles with wazero's
// optimizing compiler, as artifacts.Validate does.
func scanAndCompile(t *testing.T, m []byte) {
	t.Helper()
	if _, err := Scan(m); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	if _, err := rt.CompileModule(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// wantRefused checks that Scan refuses m with an error containing msg.
func wantRefused(t *testing.T, m []byte, msg string) {
	t.Helper()
	if _, err := Scan(m); err == nil || !strings.Contains(err.Error(), msg) {
		t.Fatalf("err = %v, want one containing %q", err, msg)
	}
}

// TestModuleFacts: what Scan tells of a module, and how it names it.
func TestModuleFacts(t *testing.T) {
	m, err := Scan(wasmtest.Batch())
	if err != nil {
		t.Fatal(err)
	}
	want := []Export{{"memory", ExternMemory, 0}, {"udfhost_abi_version", ExternFunc, 0}, {"udfhost_alloc", ExternFunc, 1}, {"sum", ExternFunc, 2}}
	if !reflect.DeepEqual(m.Exports, want) || len(m.Imports) != 0 {
		t.Fatalf("exports %+v, imports %+v", m.Exports, m.Imports)
	}
	sig, err := m.FuncType(2)
	if err != nil || sig.String() != "(i32, i32) -> (i64)" || !sig.Equal(FuncType{Params: []byte{0x7f, 0x7f}, Results: []byte{0x7e}}) {
		t.Fatalf("function 2: %v %v", sig, err)
	}
	if _, err := m.FuncType(3); err == nil || err.Error() != "function index 3 out of range: the module has 3 functions" {
		t.Fatalf("function 3: %v", err)
	}
	if m.CompileWork() <= 0 {
		t.Fatalf("compile work %d", m.CompileWork())
	}
	for k, name := range map[ExternKind]string{ExternFunc: "function", ExternTable: "table", ExternMemory: "memory", ExternGlobal: "global", ExternTag: "tag", 9: "kind 9"} {
		if k.String() != name {
			t.Errorf("%d is %q, want %q", k, k, name)
		}
	}
	for in, out := range map[string]string{"fd_write": "fd_write", "a\nb": `"a\nb"`, `a"b`: `"a\"b"`, strings.Repeat("a", 201): `"` + strings.Repeat("a", 200) + `…"`} {
		if got := QuoteName(in); got != out {
			t.Errorf("QuoteName(%q) = %s, want %s", in, got, out)
		}
	}
}

// TestScanImports: Scan finds every import, with its kind, and refuses
// malformed import sections.
func TestScanImports(t *testing.T) {
	m, err := Scan(wasmtest.FDWrite())
	if err != nil {
		t.Fatal(err)
	}
	if want := []Import{{Module: "wasi_snapshot_preview1", Name: "fd_write", Kind: ExternFunc}}; !reflect.DeepEqual(m.Imports, want) {
		t.Fatalf("%+v", m.Imports)
	}
	for name, desc := range map[string][]byte{"memory": wasmtest.MemoryDesc(), "global": wasmtest.GlobalDesc(), "table": wasmtest.TableDesc()} {
		m, err := Scan(wasmtest.ImportOther("m", "n", desc))
		if err != nil || len(m.Imports) != 1 || m.Imports[0].Kind.String() != name {
			t.Fatalf("%s: %+v %v", name, m, err)
		}
	}
	// Every prefix of a module with imports either parses or fails cleanly.
	full := wasmtest.ImportOther("env", "t", wasmtest.TableDesc())
	for i := range full {
		_, _ = Scan(full[:i])
	}
	bad := map[string][]byte{
		"huge count": wasmenc.Module(wasmenc.Section(wasmenc.SecImport, wasmenc.ULEB128(0xffffffff))),
		"long leb":   wasmenc.Module(wasmenc.Section(wasmenc.SecImport, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01})),
		"bad kind":   wasmenc.Module(wasmenc.Section(wasmenc.SecImport, wasmenc.Vec(wasmenc.Cat(wasmenc.Name("a"), wasmenc.Name("b"), []byte{0x09, 0x00})))),
		"bad utf8":   wasmenc.Module(wasmenc.Section(wasmenc.SecImport, wasmenc.Vec(wasmenc.Cat(wasmenc.Name("\xff"), wasmenc.Name("b"), []byte{0x00, 0x00})))),
		"trailing":   wasmenc.Module(wasmenc.Section(wasmenc.SecImport, wasmenc.Vec(wasmenc.Cat(wasmenc.Name("a"), wasmenc.Name("b"), []byte{0x00, 0x00})), []byte{0x00})),
		"name past":  wasmenc.Module(wasmenc.Section(wasmenc.SecImport, []byte{0x01, 0x7f})),
	}
	for name, b := range bad {
		if _, err := Scan(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// TestHostileCounts: counts and lengths that are not backed by bytes (or are
// over the limits) must be refused before wazero sees them; wazero sizes
// allocations from them and would exhaust memory.
func TestHostileCounts(t *testing.T) {
	huge := wasmenc.ULEB128(0xffffffff)
	oneFunc := func(sections ...[]byte) []byte {
		// A valid type/function/export prefix so only the hostile part is wrong.
		return wasmenc.Module(append([][]byte{
			wasmtest.Types(wasmenc.FuncType(nil, nil)),
			wasmtest.Funcs(0),
			wasmtest.Exports(wasmtest.ExportFunc("f", 0)),
		}, sections...)...)
	}
	cases := map[string][]byte{
		// Found by FuzzValidate: 15 bytes that made wazero allocate ~480 GB.
		"import count":       wasmenc.Module(wasmenc.Section(wasmenc.SecImport, wasmenc.ULEB128(0xfffffff7))),
		"function count":     wasmenc.Module(wasmtest.Types(wasmenc.FuncType(nil, nil)), wasmenc.Section(wasmenc.SecFunction, huge)),
		"type params":        wasmenc.Module(wasmtest.Types(wasmenc.Cat([]byte{0x60}, huge))),
		"too many params":    wasmenc.Module(wasmtest.Types(wasmenc.Cat([]byte{0x60}, wasmenc.ULEB128(1001), make([]byte, 1001), wasmenc.ULEB128(0)))),
		"global count":       wasmenc.Module(wasmenc.Section(wasmenc.SecGlobal, huge)),
		"export count":       wasmenc.Module(wasmenc.Section(wasmenc.SecExport, huge)),
		"export name length": wasmenc.Module(wasmtest.Exports(wasmenc.Cat(huge, []byte{0x00, 0x00}))),
		"import name length": wasmenc.Module(wasmenc.Section(wasmenc.SecImport, wasmenc.Vec(wasmenc.Cat(huge, wasmenc.Name("x"), []byte{0x00, 0x00})))),
		"element count":      wasmenc.Module(wasmenc.Section(wasmenc.SecElement, huge)),
		"element vector": oneFunc(
			wasmenc.Section(wasmenc.SecElement, wasmenc.Vec(wasmenc.Cat(wasmenc.ULEB128(0), []byte{0x41, 0x00, 0x0b}, huge))),
			wasmtest.Code(wasmtest.Body()),
		),
		"code count":     wasmenc.Module(wasmenc.Section(wasmenc.SecCode, huge)),
		"code body size": oneFunc(wasmtest.Code(wasmenc.Cat(wasmenc.ULEB128(maxFunctionSize+1), []byte{0x00, 0x0b}))),
		"locals": oneFunc(wasmtest.Code(func() []byte {
			code := wasmenc.Cat(wasmenc.ULEB128(1), wasmenc.ULEB128(0xffffffff), []byte{wasmenc.I32, 0x0b}) // 4 billion i32 locals
			return wasmenc.Cat(wasmenc.ULEB128(uint32(len(code))), code)
		}())),
		"data count":         wasmenc.Module(wasmenc.Section(wasmenc.SecData, huge)),
		"data length":        wasmenc.Module(wasmtest.Memory1(), wasmenc.Section(wasmenc.SecData, wasmenc.Vec(wasmenc.Cat(wasmenc.ULEB128(1), huge)))),
		"custom name length": wasmenc.Module(wasmenc.Section(wasmenc.SecCustom, huge)),
		"name section function names": oneFunc(
			wasmtest.Code(wasmtest.Body()),
			wasmenc.Section(wasmenc.SecCustom, wasmenc.Name("name"), []byte{0x01}, wasmenc.ULEB128(5), huge),
		),
		"name section local names": oneFunc(
			wasmtest.Code(wasmtest.Body()),
			wasmenc.Section(wasmenc.SecCustom, wasmenc.Name("name"), []byte{0x02}, wasmenc.ULEB128(7), wasmenc.ULEB128(1), wasmenc.ULEB128(0), huge),
		),
		"name subsection size lies": oneFunc(
			wasmtest.Code(wasmtest.Body()),
			wasmenc.Section(wasmenc.SecCustom, wasmenc.Name("name"), []byte{0x01}, wasmenc.ULEB128(9), wasmenc.Vec(wasmenc.Cat(wasmenc.ULEB128(0), wasmenc.Name("f")))), // contents are 4 bytes, not 9
		),
		"section size past end": wasmenc.Cat(wasmenc.Module(), []byte{0x01}, huge),
		"table count":           wasmenc.Module(wasmenc.Section(wasmenc.SecTable, huge)),
		"tag count":             wasmenc.Module(wasmenc.Section(wasmenc.SecTag, huge)),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			if _, err := Scan(data); err == nil {
				t.Fatal("scanned")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
}

func TestScanAcceptsValidModules(t *testing.T) {
	// A name section like toolchains emit must pass the scan and compile.
	m := wasmenc.Cat(wasmtest.Add(),
		wasmenc.Section(wasmenc.SecCustom, wasmenc.Name("name"),
			[]byte{0x00}, wasmenc.ULEB128(4), wasmenc.Name("mod"), // module name "mod": 1+3 bytes
			[]byte{0x01}, wasmenc.ULEB128(6), wasmenc.Vec(wasmenc.Cat(wasmenc.ULEB128(0), wasmenc.Name("add"))),
			[]byte{0x02}, wasmenc.ULEB128(9), wasmenc.Vec(wasmenc.Cat(wasmenc.ULEB128(0), wasmenc.Vec(wasmenc.Cat(wasmenc.ULEB128(0), wasmenc.Name("a")), wasmenc.Cat(wasmenc.ULEB128(1), wasmenc.Name("b"))))),
		),
		wasmenc.Section(wasmenc.SecCustom, wasmenc.Name("producers"), []byte{0x00}),
	)
	scanAndCompile(t, m)
	if s, _ := Scan(m); len(s.Exports) != 1 {
		t.Fatalf("%+v", s.Exports)
	}
}
