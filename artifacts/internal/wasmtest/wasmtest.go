// Package wasmtest holds the WebAssembly modules that the tests of
// artifacts and of its scanner share, assembled with wasmenc so that the
// tests need no external tools: tiny ones, each documented with the WAT it
// corresponds to, and the shapes whose compile cost grows with a size
// (Shapes). Only tests and the cost model (wasmscan/costmodel) import it.
package wasmtest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/udfhost/udfhost/internal/wasmenc"
)

// GoGuest is a 2.5 MB Go guest, bin/examples/sha256hex.wasm, built by
// make examples; without it, tb is skipped.
func GoGuest(tb testing.TB) []byte {
	_, file, _, _ := runtime.Caller(0)
	wasm, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "..", "bin", "examples", "sha256hex.wasm"))
	if err != nil {
		tb.Skip("no Go guest built:", err)
	}
	return wasm
}

// Body is a code-section entry without locals: instrs, then end.
func Body(instrs ...byte) []byte { return wasmenc.Body(nil, instrs, []byte{wasmenc.OpEnd}) }

// ExportFunc is the export entry of function idx.
func ExportFunc(name string, idx uint32) []byte { return wasmenc.Export(name, wasmenc.ExternFunc, idx) }

// Types is a type section of the given function types.
func Types(types ...[]byte) []byte { return wasmenc.Section(wasmenc.SecType, wasmenc.Vec(types...)) }

// Funcs is a function section: the type index of every defined function.
func Funcs(typeIdx ...uint32) []byte {
	idx := make([][]byte, len(typeIdx))
	for i, t := range typeIdx {
		idx[i] = wasmenc.ULEB128(t)
	}
	return wasmenc.Section(wasmenc.SecFunction, wasmenc.Vec(idx...))
}

// Exports is an export section.
func Exports(entries ...[]byte) []byte {
	return wasmenc.Section(wasmenc.SecExport, wasmenc.Vec(entries...))
}

// Code is a code section of the given entries (see Body).
func Code(bodies ...[]byte) []byte { return wasmenc.Section(wasmenc.SecCode, wasmenc.Vec(bodies...)) }

// Memory1 is a memory section of one memory of at least 1 page, no maximum.
func Memory1() []byte { return wasmenc.Section(wasmenc.SecMemory, wasmenc.Vec([]byte{0x00, 0x01})) }

// Add is
//
//	(module
//	  (func (export "add") (param i64 i64) (result i64)
//	    local.get 0 local.get 1 i64.add))
func Add() []byte {
	return wasmenc.Module(
		Types(wasmenc.FuncType([]byte{wasmenc.I64, wasmenc.I64}, []byte{wasmenc.I64})),
		Funcs(0),
		Exports(ExportFunc("add", 0)),
		Code(Body(0x20, 0x00, 0x20, 0x01, 0x7c)),
	)
}

// Batch declares the batch ABI v1:
//
//	(module
//	  (memory (export "memory") 1)
//	  (func (export "udfhost_abi_version") (result i32) i32.const 1)
//	  (func (export "udfhost_alloc") (param i32) (result i32) i32.const 1024)
//	  (func (export "sum") (param i32 i32) (result i64) i64.const 0))
func Batch() []byte {
	i32, i64 := wasmenc.I32, wasmenc.I64
	return wasmenc.Module(
		Types(
			wasmenc.FuncType(nil, []byte{i32}),
			wasmenc.FuncType([]byte{i32}, []byte{i32}),
			wasmenc.FuncType([]byte{i32, i32}, []byte{i64}),
		),
		Funcs(0, 1, 2),
		Memory1(),
		Exports(
			wasmenc.Export("memory", wasmenc.ExternMemory, 0),
			ExportFunc("udfhost_abi_version", 0),
			ExportFunc("udfhost_alloc", 1),
			ExportFunc("sum", 2),
		),
		Code(
			Body(0x41, 0x01),       // i32.const 1
			Body(0x41, 0x80, 0x08), // i32.const 1024
			Body(0x42, 0x00),       // i64.const 0
		),
	)
}

// HalfABI exports udfhost_abi_version without udfhost_alloc:
//
//	(module (func (export "udfhost_abi_version") (result i32) i32.const 1))
func HalfABI() []byte {
	return wasmenc.Module(
		Types(wasmenc.FuncType(nil, []byte{wasmenc.I32})),
		Funcs(0),
		Exports(ExportFunc("udfhost_abi_version", 0)),
		Code(Body(0x41, 0x01)),
	)
}

// BadABISig has both ABI exports but udfhost_alloc has type () -> i32:
//
//	(module
//	  (func (export "udfhost_abi_version") (export "udfhost_alloc") (result i32) i32.const 1))
func BadABISig() []byte {
	return wasmenc.Module(
		Types(wasmenc.FuncType(nil, []byte{wasmenc.I32})),
		Funcs(0),
		Exports(ExportFunc("udfhost_abi_version", 0), ExportFunc("udfhost_alloc", 0)),
		Code(Body(0x41, 0x01)),
	)
}

// NoExport has a function but exports nothing callable:
//
//	(module (memory (export "memory") 1) (func))
func NoExport() []byte {
	return wasmenc.Module(
		Types(wasmenc.FuncType(nil, nil)),
		Funcs(0),
		Memory1(),
		Exports(wasmenc.Export("memory", wasmenc.ExternMemory, 0)),
		Code(Body()),
	)
}

// ImportFunc imports one function and exports a trivial one:
//
//	(module
//	  (import "<mod>" "<name>" (func (param ...) (result ...)))
//	  (func (export "f")))
func ImportFunc(mod, name string, params, results []byte) []byte {
	return wasmenc.Module(
		Types(wasmenc.FuncType(params, results), wasmenc.FuncType(nil, nil)),
		wasmenc.Section(wasmenc.SecImport, wasmenc.Vec(wasmenc.Import(mod, name, wasmenc.ExternFunc, wasmenc.ULEB128(0)))),
		Funcs(1),
		Exports(ExportFunc("f", 1)), // index 1: the import is 0
		Code(Body()),
	)
}

// FDWrite imports the allowed WASI fd_write with its real type:
//
//	(module
//	  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
//	  (func (export "f")))
func FDWrite() []byte {
	i32 := wasmenc.I32
	return ImportFunc("wasi_snapshot_preview1", "fd_write", []byte{i32, i32, i32, i32}, []byte{i32})
}

// ImportOther imports a non-function (desc is the kind byte and its type;
// see MemoryDesc) and exports a trivial function:
//
//	(module
//	  (import "<mod>" "<name>" (memory 1))
//	  (func (export "f")))
func ImportOther(mod, name string, desc []byte) []byte {
	return wasmenc.Module(
		Types(wasmenc.FuncType(nil, nil)),
		wasmenc.Section(wasmenc.SecImport, wasmenc.Vec(wasmenc.Import(mod, name, desc[0], desc[1:]))),
		Funcs(0),
		Exports(ExportFunc("f", 0)),
		Code(Body()),
	)
}

// MemoryDesc is (memory 1) for ImportOther.
func MemoryDesc() []byte { return []byte{wasmenc.ExternMemory, 0x00, 0x01} }

// GlobalDesc is (global i32) for ImportOther.
func GlobalDesc() []byte { return []byte{wasmenc.ExternGlobal, wasmenc.I32, 0x00} }

// TableDesc is (table 1 funcref) for ImportOther.
func TableDesc() []byte { return []byte{wasmenc.ExternTable, wasmenc.FuncRef, 0x00, 0x01} }

// OneFunc is a module of function f (param i32) (local i32 × locals),
// exported as "f", whose body is instrs then end.
func OneFunc(locals uint32, instrs []byte) []byte {
	var decls []wasmenc.Local
	if locals > 0 {
		decls = []wasmenc.Local{{N: locals, Type: wasmenc.I32}}
	}
	return wasmenc.Module(
		Types(wasmenc.FuncType([]byte{wasmenc.I32}, nil)),
		Funcs(0),
		Exports(ExportFunc("f", 0)),
		Code(wasmenc.Body(decls, instrs, []byte{wasmenc.OpEnd})),
	)
}

// ReadLocals is local.get i; drop for i in 1..n.
func ReadLocals(n int) []byte {
	var out []byte
	for i := 1; i <= n; i++ {
		out = append(append(append(out, 0x20), wasmenc.ULEB128(uint32(i))...), 0x1a)
	}
	return out
}

// NestedBlocks is n blocks, each in the one before.
func NestedBlocks(n int) []byte {
	return wasmenc.Cat(wasmenc.Rep(n, 0x02, wasmenc.BlockEmpty), wasmenc.Rep(n, wasmenc.OpEnd))
}

// HugeTable is test/hostile/huge_table.wat:
//
//	(module
//	  (table $t 100000000 funcref)
//	  (elem declare func $add)
//	  (func $add (export "add") (param i64 i64) (result i64)
//	    (table.fill $t (i32.const 0) (ref.func $add) (table.size $t))
//	    (i64.add (local.get 0) (local.get 1))))
func HugeTable() []byte {
	return wasmenc.Module(
		Types(wasmenc.FuncType([]byte{wasmenc.I64, wasmenc.I64}, []byte{wasmenc.I64})),
		Funcs(0),
		wasmenc.Section(wasmenc.SecTable, wasmenc.Vec(wasmenc.Cat([]byte{wasmenc.FuncRef, 0x00}, wasmenc.ULEB128(100_000_000)))),
		Exports(ExportFunc("add", 0)),
		wasmenc.Section(wasmenc.SecElement, wasmenc.Vec([]byte{0x03, 0x00, 0x01, 0x00})), // declarative, funcref, [$add]
		Code(Body(0x41, 0x00, 0xd2, 0x00, 0xfc, 0x10, 0x00, 0xfc, 0x11, 0x00, 0x20, 0x00, 0x20, 0x01, 0x7c)),
	)
}
