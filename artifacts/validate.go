package artifacts

import (
	"bytes"
	"context"
	"encoding/binary"
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
func Validate(ctx context.Context, wasm []byte, kind Kind, cache wazero.CompilationCache, rc wazero.RuntimeConfig) (Info, error) {
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
	imports, err := ParseImports(wasm)
	if err != nil {
		return Info{}, err
	}
	if err := checkImports(imports, kind); err != nil {
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

	// Cross-check with what wazero decoded (defence in depth).
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if err := checkImports([]RawImport{{Module: mod, Name: name, Kind: importFunc}}, kind); err != nil {
			return Info{}, err
		}
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		return Info{}, fmt.Errorf("%w: %s: memory imports are not allowed", ErrDisallowedImport, quoteName(mod+"."+name))
	}
	if err := checkWASISignatures(ctx, rt, cm); err != nil {
		return Info{}, err
	}

	info := Info{}
	for _, imp := range imports {
		info.Imports = append(info.Imports, imp.Module+"."+imp.Name)
	}
	sort.Strings(info.Imports)
	info.Imports = slices.Compact(info.Imports)

	fns := cm.ExportedFunctions()
	if len(fns) == 0 {
		return Info{}, fmt.Errorf("%w: module exports no functions", ErrInvalidModule)
	}
	for name, def := range fns {
		info.Exports = append(info.Exports, Export{
			Name:    name,
			Params:  typeNames(def.ParamTypes()),
			Results: typeNames(def.ResultTypes()),
		})
	}
	sort.Slice(info.Exports, func(i, j int) bool { return info.Exports[i].Name < info.Exports[j].Name })

	ver, hasVer := fns[ExportABIVersion]
	alloc, hasAlloc := fns[ExportAlloc]
	switch {
	case hasVer && hasAlloc:
		if !sigIs(ver, nil, []api.ValueType{api.ValueTypeI32}) {
			return Info{}, fmt.Errorf("%w: %s must have type () -> i32, has %s", ErrInvalidModule, ExportABIVersion, sigString(ver))
		}
		if !sigIs(alloc, []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}) {
			return Info{}, fmt.Errorf("%w: %s must have type (i32) -> i32, has %s", ErrInvalidModule, ExportAlloc, sigString(alloc))
		}
		info.ABIVersion = 1
	case hasVer:
		return Info{}, fmt.Errorf("%w: module exports %s but not %s; a batch ABI module must export both", ErrInvalidModule, ExportABIVersion, ExportAlloc)
	case hasAlloc:
		return Info{}, fmt.Errorf("%w: module exports %s but not %s; a batch ABI module must export both", ErrInvalidModule, ExportAlloc, ExportABIVersion)
	}
	return info, nil
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
// will instantiate later.
func checkWASISignatures(ctx context.Context, rt wazero.Runtime, cm wazero.CompiledModule) error {
	imported := cm.ImportedFunctions()
	if len(imported) == 0 {
		return nil
	}
	host, err := wasi_snapshot_preview1.NewBuilder(rt).Compile(ctx)
	if err != nil {
		return fmt.Errorf("validate module: compile WASI host module: %w", err)
	}
	defer host.Close(ctx)
	have := host.ExportedFunctions()
	for _, f := range imported {
		mod, name, _ := f.Import()
		h, ok := have[name]
		if mod != WASIModule || !ok {
			return fmt.Errorf("%w: %s: no such function in %s", ErrDisallowedImport, quoteName(mod+"."+name), WASIModule)
		}
		if !slices.Equal(f.ParamTypes(), h.ParamTypes()) || !slices.Equal(f.ResultTypes(), h.ResultTypes()) {
			return fmt.Errorf("%w: %s is imported as %s but has type %s", ErrInvalidModule, quoteName(mod+"."+name), sigString(f), sigString(h))
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

func sigIs(def api.FunctionDefinition, params, results []api.ValueType) bool {
	return slices.Equal(def.ParamTypes(), params) && slices.Equal(def.ResultTypes(), results)
}

func sigString(def api.FunctionDefinition) string {
	return "(" + strings.Join(typeNames(def.ParamTypes()), ", ") + ") -> (" + strings.Join(typeNames(def.ResultTypes()), ", ") + ")"
}

func typeNames(ts []api.ValueType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = valueTypeName(t)
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
