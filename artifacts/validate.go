package artifacts

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/udfhost/udfhost/artifacts/internal/wasmscan"
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
// walk and implementation limits (wasmscan.Scan), the import rules for kind,
// the WASI functions' types, the exports and the batch ABI. It does not
// type-check function bodies: a compile does (Validate, or the Store's
// Precompile hook). Its memory is in proportion to the module's counts of
// types, functions and exports, not to its code.
func Describe(ctx context.Context, wasm []byte, kind Kind) (Info, error) {
	if kind != KindUDF && kind != KindConnector {
		return Info{}, fmt.Errorf("%w: unknown artifact kind %q", ErrInvalidArgument, kind)
	}
	if err := wasmscan.CheckHeader(wasm); err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("validate module: %w", err)
	}
	// Our own bounds-checked walk first: wazero's decoder trusts declared
	// counts, so hostile sizes must never reach it. It also finds the
	// imports, so a disallowed one is reported clearly without compiling.
	m, err := wasmscan.Scan(wasm)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	if err := checkImports(m, kind); err != nil {
		return Info{}, err
	}
	var wasi []namedSig
	fn := uint32(0) // function imports come first in the function index space
	for _, imp := range m.Imports {
		if imp.Kind != wasmscan.ExternFunc {
			continue // checkImports refused these
		}
		if imp.Module != WASIModule {
			fn++ // udfhost_http, checked by checkImports
			continue
		}
		sig, err := m.FuncType(fn)
		if err != nil {
			return Info{}, fmt.Errorf("%w: %v", ErrInvalidModule, err)
		}
		wasi = append(wasi, namedSig{imp.Name, sig})
		fn++
	}
	if err := checkWASISignatures(ctx, wasi); err != nil {
		return Info{}, err
	}

	info := Info{}
	for _, imp := range m.Imports {
		info.Imports = append(info.Imports, imp.Module+"."+imp.Name)
	}
	sort.Strings(info.Imports)
	info.Imports = slices.Compact(info.Imports)

	fns := map[string]wasmscan.FuncType{}
	seen := make(map[string]struct{}, len(m.Exports))
	for _, e := range m.Exports {
		if _, dup := seen[e.Name]; dup {
			return Info{}, fmt.Errorf("%w: duplicate export name %s", ErrInvalidModule, wasmscan.QuoteName(e.Name))
		}
		seen[e.Name] = struct{}{}
		if e.Kind != wasmscan.ExternFunc {
			continue
		}
		sig, err := m.FuncType(e.Index)
		if err != nil {
			return Info{}, fmt.Errorf("export %s: %w: %v", wasmscan.QuoteName(e.Name), ErrInvalidModule, err)
		}
		fns[e.Name] = sig
		info.Exports = append(info.Exports, Export{Name: e.Name, Params: wasmscan.ValueTypeNames(sig.Params), Results: wasmscan.ValueTypeNames(sig.Results)})
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
		if !ver.Equal(wasmscan.FuncType{Results: i32}) {
			return Info{}, fmt.Errorf("%w: %s must have type () -> i32, has %s", ErrInvalidModule, ExportABIVersion, ver)
		}
		if !alloc.Equal(wasmscan.FuncType{Params: i32, Results: i32}) {
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
	sig  wasmscan.FuncType
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
		return fmt.Errorf("%w: %s: memory imports are not allowed", ErrDisallowedImport, wasmscan.QuoteName(mod+"."+name))
	}
	sort.Strings(imports)
	imports = slices.Compact(imports)
	var exports []Export
	for name, def := range cm.ExportedFunctions() {
		exports = append(exports, Export{Name: name, Params: wasmscan.ValueTypeNames(valueTypes(def.ParamTypes())), Results: wasmscan.ValueTypeNames(valueTypes(def.ResultTypes()))})
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

// HTTPModule is the import module of the egress broker (docs/ABI.md, "The
// udfhost_http import module"): connector artifacts may import its
// functions, with these types; udf artifacts may not.
const HTTPModule = "udfhost_http"

var httpImports = map[string]wasmscan.FuncType{
	"request":          {Params: []byte{wasmI32, wasmI32, wasmI32, wasmI32}, Results: []byte{wasmI64}},
	"response_read":    {Params: []byte{wasmI32, wasmI32, wasmI32}, Results: []byte{wasmI32}},
	"response_headers": {Params: []byte{wasmI32, wasmI32}, Results: []byte{wasmI32}},
	"last_error":       {Params: []byte{wasmI32, wasmI32}, Results: []byte{wasmI32}},
}

const (
	wasmI32 = byte(api.ValueTypeI32)
	wasmI64 = byte(api.ValueTypeI64)
)

// checkImports applies the import rules for kind: functions of WASI
// without its sockets and, for a connector, of udfhost_http with their
// types (WASI's are checked against the host's implementation later).
func checkImports(m *wasmscan.Module, kind Kind) error {
	fn := uint32(0) // function imports come first in the function index space
	for _, imp := range m.Imports {
		full := imp.Module + "." + imp.Name
		allowed := WASIModule
		if kind == KindConnector {
			allowed = WASIModule + " and " + HTTPModule
		}
		switch {
		case imp.Module != WASIModule && (imp.Module != HTTPModule || kind != KindConnector):
			return fmt.Errorf("%w: %s (%s): %s artifacts may import only from %s", ErrDisallowedImport, wasmscan.QuoteName(full), imp.Kind, kind, allowed)
		case imp.Kind != wasmscan.ExternFunc:
			return fmt.Errorf("%w: %s: %s imports are not allowed, only functions", ErrDisallowedImport, wasmscan.QuoteName(full), imp.Kind)
		case imp.Module == WASIModule && strings.HasPrefix(imp.Name, "sock_"):
			return fmt.Errorf("%w: %s: WASI socket functions are not allowed", ErrDisallowedImport, wasmscan.QuoteName(full))
		case imp.Module == HTTPModule:
			want, ok := httpImports[imp.Name]
			if !ok {
				return fmt.Errorf("%w: %s: no such function in %s", ErrDisallowedImport, wasmscan.QuoteName(full), HTTPModule)
			}
			sig, err := m.FuncType(fn)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrInvalidModule, err)
			}
			if !sig.Equal(want) {
				return fmt.Errorf("%w: %s is imported as %s but has type %s", ErrInvalidModule, wasmscan.QuoteName(full), sig, want)
			}
		}
		fn++
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
			return fmt.Errorf("%w: %s: no such function in %s", ErrDisallowedImport, wasmscan.QuoteName(WASIModule+"."+f.name), WASIModule)
		}
		want := wasmscan.FuncType{Params: valueTypes(h.ParamTypes()), Results: valueTypes(h.ResultTypes())}
		if !f.sig.Equal(want) {
			return fmt.Errorf("%w: %s is imported as %s but has type %s", ErrInvalidModule, wasmscan.QuoteName(WASIModule+"."+f.name), f.sig, want)
		}
	}
	return nil
}
