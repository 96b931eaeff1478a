package artifacts

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// WASIModule is the only module udf and connector artifacts may import from.
const WASIModule = "wasi_snapshot_preview1"

// Names of the batch ABI exports (see docs/ABI.md).
const (
	ExportABIVersion = "udfhost_abi_version"
	ExportAlloc      = "udfhost_alloc"
)

// Info is what validation learns about a module.
type Info struct {
	Exports    []Export // exported functions, sorted by name
	Imports    []string // "module.name" of every import, sorted, without duplicates
	ABIVersion uint32   // 1 for a batch ABI module, else 0
}

// Import kinds in the binary format.
const (
	importFunc   byte = 0
	importTable  byte = 1
	importMemory byte = 2
	importGlobal byte = 3
	importTag    byte = 4 // exception-handling proposal
)

// RawImport is one entry of a module's import section.
type RawImport struct {
	Module, Name string
	Kind         byte // 0 function, 1 table, 2 memory, 3 global, 4 tag
}

// KindName names an import kind as the text format does.
func (i RawImport) KindName() string {
	switch i.Kind {
	case importFunc:
		return "function"
	case importTable:
		return "table"
	case importMemory:
		return "memory"
	case importGlobal:
		return "global"
	case importTag:
		return "tag"
	}
	return fmt.Sprintf("kind %d", i.Kind)
}

// Validate checks that wasm is a WebAssembly module the host can accept as
// an artifact of the given kind and describes it. Errors wrap
// ErrInvalidModule (does not parse or compile, exports nothing callable,
// half a batch ABI) or ErrDisallowedImport (naming the import). cache, if
// not nil, is used by the validation compile.
//
// rc, if not nil, is the runtime configuration to compile with: pass the
// workers' one (sandbox.RuntimeConfig) so that this compile fills the
// compilation cache they load from, since wazero keys its cache on it.
//
// Validate compiles in the calling process, which costs memory in
// proportion to the module's code (hundreds of bytes an instruction); a
// host that takes modules from outside should call Describe and compile
// out of process, as the Store does with Config.Precompile.
func Validate(ctx context.Context, wasm []byte, kind Kind, cache wazero.CompilationCache, rc wazero.RuntimeConfig) (Info, error) {
	info, err := Describe(ctx, wasm, kind)
	if err != nil {
		return Info{}, err
	}
	cfg := wazero.NewRuntimeConfigCompiler()
	if rc != nil {
		cfg = rc
	}
	if cache != nil {
		cfg = cfg.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	defer cm.Close(ctx)
	// Cross-check with what wazero decoded (defence in depth: Describe
	// is what a host that compiles out of process relies on).
	if err := sameAsWazero(info, cm); err != nil {
		return Info{}, err
	}
	return info, nil
}

// Describe checks what can be checked of a module without compiling its
// code and describes it, as Validate does: the bounds-checked structural
// walk and implementation limits (ParseImports), the import rules for kind,
// the WASI functions' types, the exports and the batch ABI. It does not
// type-check function bodies: a compile does (Validate, or the Store's
// Precompile hook). Its memory is in proportion to the module's counts of
// types, functions and exports, not to its code.
func Describe(ctx context.Context, wasm []byte, kind Kind) (Info, error) {
	if kind != KindUDF && kind != KindConnector {
		return Info{}, fmt.Errorf("%w: unknown artifact kind %q", ErrInvalidArgument, kind)
	}
	if err := checkHeader(wasm); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("validate module: %w", err)
	}
	// Our own bounds-checked walk first: wazero's decoder trusts declared
	// counts, so hostile sizes must never reach it. It also finds the
	// imports, so a disallowed one is reported clearly without compiling.
	m, err := scan(wasm)
	if err != nil {
		if !errors.Is(err, ErrInvalidModule) {
			err = fmt.Errorf("%w: %v", ErrInvalidModule, err)
		}
		return Info{}, err
	}
	if err := checkImports(m.imports, kind); err != nil {
		return Info{}, err
	}
	sigOf := func(fn uint32) (funcSig, error) {
		if int(fn) >= len(m.funcTypes) {
			return funcSig{}, fmt.Errorf("%w: function index %d out of range: the module has %d functions", ErrInvalidModule, fn, len(m.funcTypes))
		}
		t := m.funcTypes[fn]
		if int(t) >= len(m.types) {
			return funcSig{}, fmt.Errorf("%w: function %d has type index %d out of range: the module has %d types", ErrInvalidModule, fn, t, len(m.types))
		}
		return m.typeAt(t), nil
	}
	var wasi []namedSig
	fn := uint32(0) // function imports come first in the function index space
	for _, imp := range m.imports {
		if imp.Kind != importFunc {
			continue // checkImports refused these
		}
		sig, err := sigOf(fn)
		if err != nil {
			return Info{}, err
		}
		wasi = append(wasi, namedSig{imp.Name, sig})
		fn++
	}
	if err := checkWASISignatures(ctx, wasi); err != nil {
		return Info{}, err
	}

	info := Info{}
	for _, imp := range m.imports {
		info.Imports = append(info.Imports, imp.Module+"."+imp.Name)
	}
	sort.Strings(info.Imports)
	info.Imports = slices.Compact(info.Imports)

	fns := map[string]funcSig{}
	seen := make(map[string]struct{}, len(m.exportsOf))
	for _, e := range m.exportsOf {
		if _, dup := seen[e.name]; dup {
			return Info{}, fmt.Errorf("%w: duplicate export name %s", ErrInvalidModule, quoteName(e.name))
		}
		seen[e.name] = struct{}{}
		if e.kind != importFunc {
			continue
		}
		sig, err := sigOf(e.index)
		if err != nil {
			return Info{}, fmt.Errorf("export %s: %w", quoteName(e.name), err)
		}
		fns[e.name] = sig
		info.Exports = append(info.Exports, Export{Name: e.name, Params: typeNames(sig.params), Results: typeNames(sig.results)})
	}
	if len(fns) == 0 {
		return Info{}, fmt.Errorf("%w: module exports no functions", ErrInvalidModule)
	}
	sort.Slice(info.Exports, func(i, j int) bool { return info.Exports[i].Name < info.Exports[j].Name })

	i32 := []byte{byte(api.ValueTypeI32)}
	ver, hasVer := fns[ExportABIVersion]
	alloc, hasAlloc := fns[ExportAlloc]
	switch {
	case hasVer && hasAlloc:
		if !ver.is(nil, i32) {
			return Info{}, fmt.Errorf("%w: %s must have type () -> i32, has %s", ErrInvalidModule, ExportABIVersion, ver)
		}
		if !alloc.is(i32, i32) {
			return Info{}, fmt.Errorf("%w: %s must have type (i32) -> i32, has %s", ErrInvalidModule, ExportAlloc, alloc)
		}
		info.ABIVersion = 1
	case hasVer:
		return Info{}, fmt.Errorf("%w: module exports %s but not %s; a batch ABI module must export both", ErrInvalidModule, ExportABIVersion, ExportAlloc)
	case hasAlloc:
		return Info{}, fmt.Errorf("%w: module exports %s but not %s; a batch ABI module must export both", ErrInvalidModule, ExportAlloc, ExportABIVersion)
	}
	return info, nil
}

// namedSig is a WASI function import: its name and type.
type namedSig struct {
	name string
	sig  funcSig
}

func (f funcSig) is(params, results []byte) bool {
	return bytes.Equal(f.params, params) && bytes.Equal(f.results, results)
}

func (f funcSig) String() string {
	return "(" + strings.Join(typeNames(f.params), ", ") + ") -> (" + strings.Join(typeNames(f.results), ", ") + ")"
}

// sameAsWazero checks that wazero decoded the imports and exports Describe
// found.
func sameAsWazero(info Info, cm wazero.CompiledModule) error {
	var imports []string
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		imports = append(imports, mod+"."+name)
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		return fmt.Errorf("%w: %s: memory imports are not allowed", ErrDisallowedImport, quoteName(mod+"."+name))
	}
	sort.Strings(imports)
	imports = slices.Compact(imports)
	var exports []Export
	for name, def := range cm.ExportedFunctions() {
		exports = append(exports, Export{Name: name, Params: typeNames(valueTypes(def.ParamTypes())), Results: typeNames(valueTypes(def.ResultTypes()))})
	}
	sort.Slice(exports, func(i, j int) bool { return exports[i].Name < exports[j].Name })
	if !slices.Equal(imports, info.Imports) || !slices.EqualFunc(exports, info.Exports, func(a, b Export) bool {
		return a.Name == b.Name && slices.Equal(a.Params, b.Params) && slices.Equal(a.Results, b.Results)
	}) {
		return fmt.Errorf("%w: the module's imports or exports decode differently in wazero (%v, %v) and in the host's own walk (%v, %v)", ErrInvalidModule, imports, exports, info.Imports, info.Exports)
	}
	return nil
}

func valueTypes(ts []api.ValueType) []byte {
	out := make([]byte, len(ts))
	for i, t := range ts {
		out[i] = byte(t)
	}
	return out
}

// checkHeader gives a clear error for inputs that are not wasm at all.
func checkHeader(wasm []byte) error {
	magic := []byte{0x00, 'a', 's', 'm'}
	if len(wasm) < 8 {
		if len(wasm) >= 4 && !bytes.Equal(wasm[:4], magic) || len(wasm) < 4 && !bytes.HasPrefix(magic, wasm) {
			return fmt.Errorf("%w: not a WebAssembly module (bad magic)", ErrInvalidModule)
		}
		return fmt.Errorf("%w: truncated: %d bytes, a WebAssembly header alone is 8", ErrInvalidModule, len(wasm))
	}
	if !bytes.Equal(wasm[:4], magic) {
		return fmt.Errorf("%w: not a WebAssembly module (bad magic)", ErrInvalidModule)
	}
	if v := binary.LittleEndian.Uint32(wasm[4:8]); v != 1 {
		return fmt.Errorf("%w: unsupported WebAssembly binary version %d (want 1; components are not supported)", ErrInvalidModule, v)
	}
	return nil
}

// checkImports applies the import rules for kind. Today udf and connector
// artifacts follow the same rule: functions from wasi_snapshot_preview1
// other than its sock_* functions, nothing else.
func checkImports(imports []RawImport, kind Kind) error {
	for _, imp := range imports {
		full := imp.Module + "." + imp.Name
		switch {
		case imp.Module != WASIModule:
			return fmt.Errorf("%w: %s (%s): %s artifacts may import only from %s", ErrDisallowedImport, quoteName(full), imp.KindName(), kind, WASIModule)
		case imp.Kind != importFunc:
			return fmt.Errorf("%w: %s: %s imports are not allowed, only functions", ErrDisallowedImport, quoteName(full), imp.KindName())
		case strings.HasPrefix(imp.Name, "sock_"):
			return fmt.Errorf("%w: %s: WASI socket functions are not allowed", ErrDisallowedImport, quoteName(full))
		}
	}
	return nil
}

// checkWASISignatures makes sure every WASI import names a function the
// host's WASI implementation has, with the same type, so that the module
// will instantiate later. Only the host module is compiled, never the
// guest.
func checkWASISignatures(ctx context.Context, imported []namedSig) error {
	if len(imported) == 0 {
		return nil
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	host, err := wasi_snapshot_preview1.NewBuilder(rt).Compile(ctx)
	if err != nil {
		return fmt.Errorf("validate module: compile WASI host module: %w", err)
	}
	defer host.Close(ctx)
	have := host.ExportedFunctions()
	for _, f := range imported {
		h, ok := have[f.name]
		if !ok {
			return fmt.Errorf("%w: %s: no such function in %s", ErrDisallowedImport, quoteName(WASIModule+"."+f.name), WASIModule)
		}
		want := funcSig{valueTypes(h.ParamTypes()), valueTypes(h.ResultTypes())}
		if !f.sig.is(want.params, want.results) {
			return fmt.Errorf("%w: %s is imported as %s but has type %s", ErrInvalidModule, quoteName(WASIModule+"."+f.name), f.sig, want)
		}
	}
	return nil
}

// quoteName prints an import name as is when it is plain, else quoted, so
// control characters in a hostile module cannot forge log lines.
func quoteName(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%q", s[:200]+"…")
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}

func typeNames(ts []byte) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = valueTypeName(api.ValueType(t))
	}
	return out
}

func valueTypeName(t api.ValueType) string {
	switch t {
	case api.ValueTypeI32:
		return "i32"
	case api.ValueTypeI64:
		return "i64"
	case api.ValueTypeF32:
		return "f32"
	case api.ValueTypeF64:
		return "f64"
	case 0x7b:
		return "v128"
	case 0x70:
		return "funcref"
	case api.ValueTypeExternref:
		return "externref"
	}
	return fmt.Sprintf("0x%02x", t)
}
