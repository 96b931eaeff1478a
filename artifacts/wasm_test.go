package artifacts

// Tiny WebAssembly modules assembled by hand, so tests need no external
// tools. Each builder documents the WAT it corresponds to.

// leb encodes n as unsigned LEB128.
func leb(n uint32) []byte {
	var out []byte
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			out = append(out, b|0x80)
			continue
		}
		return append(out, b)
	}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// str is a wasm name: length then UTF-8 bytes.
func str(s string) []byte { return cat(leb(uint32(len(s))), []byte(s)) }

// vec is a wasm vector: count then the concatenated items.
func vec(items ...[]byte) []byte { return cat(leb(uint32(len(items))), cat(items...)) }

// section is a section id, its byte size and its contents.
func section(id byte, contents ...[]byte) []byte {
	body := cat(contents...)
	return cat([]byte{id}, leb(uint32(len(body))), body)
}

// wasmModule is the header ("\0asm", version 1) followed by sections.
func wasmModule(sections ...[]byte) []byte {
	return cat([]byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}, cat(sections...))
}

// Value types.
const (
	tI32 = 0x7f
	tI64 = 0x7e
)

// funcType is (func (param ...) (result ...)).
func funcType(params, results []byte) []byte {
	p := make([][]byte, len(params))
	for i, t := range params {
		p[i] = []byte{t}
	}
	r := make([][]byte, len(results))
	for i, t := range results {
		r[i] = []byte{t}
	}
	return cat([]byte{0x60}, vec(p...), vec(r...))
}

// body is a function body without locals: the instructions then `end`.
func body(instrs ...byte) []byte {
	code := cat([]byte{0x00}, instrs, []byte{0x0b}) // no locals, ..., end
	return cat(leb(uint32(len(code))), code)
}

// exportFunc is an export entry of function index idx.
func exportFunc(name string, idx uint32) []byte { return cat(str(name), []byte{0x00}, leb(idx)) }

// addModule:
//
//	(module
//	  (func (export "add") (param i64 i64) (result i64)
//	    local.get 0 local.get 1 i64.add))
func addModule() []byte {
	return wasmModule(
		section(1, vec(funcType([]byte{tI64, tI64}, []byte{tI64}))),
		section(3, vec(leb(0))),
		section(7, vec(exportFunc("add", 0))),
		section(10, vec(body(0x20, 0x00, 0x20, 0x01, 0x7c))),
	)
}

// batchModule declares the batch ABI v1:
//
//	(module
//	  (memory (export "memory") 1)
//	  (func (export "udfhost_abi_version") (result i32) i32.const 1)
//	  (func (export "udfhost_alloc") (param i32) (result i32) i32.const 1024)
//	  (func (export "sum") (param i32 i32) (result i64) i64.const 0))
func batchModule() []byte {
	return wasmModule(
		section(1, vec(
			funcType(nil, []byte{tI32}),
			funcType([]byte{tI32}, []byte{tI32}),
			funcType([]byte{tI32, tI32}, []byte{tI64}),
		)),
		section(3, vec(leb(0), leb(1), leb(2))),
		section(5, vec([]byte{0x00, 0x01})), // memory min 1
		section(7, vec(
			cat(str("memory"), []byte{0x02, 0x00}),
			exportFunc("udfhost_abi_version", 0),
			exportFunc("udfhost_alloc", 1),
			exportFunc("sum", 2),
		)),
		section(10, vec(
			body(0x41, 0x01),       // i32.const 1
			body(0x41, 0x80, 0x08), // i32.const 1024
			body(0x42, 0x00),       // i64.const 0
		)),
	)
}

// halfABIModule exports udfhost_abi_version without udfhost_alloc:
//
//	(module (func (export "udfhost_abi_version") (result i32) i32.const 1))
func halfABIModule() []byte {
	return wasmModule(
		section(1, vec(funcType(nil, []byte{tI32}))),
		section(3, vec(leb(0))),
		section(7, vec(exportFunc("udfhost_abi_version", 0))),
		section(10, vec(body(0x41, 0x01))),
	)
}

// badABISigModule has both ABI exports but udfhost_alloc has type () -> i32:
//
//	(module
//	  (func (export "udfhost_abi_version") (export "udfhost_alloc") (result i32) i32.const 1))
func badABISigModule() []byte {
	return wasmModule(
		section(1, vec(funcType(nil, []byte{tI32}))),
		section(3, vec(leb(0))),
		section(7, vec(exportFunc("udfhost_abi_version", 0), exportFunc("udfhost_alloc", 0))),
		section(10, vec(body(0x41, 0x01))),
	)
}

// noExportModule has a function but exports nothing callable:
//
//	(module (memory (export "memory") 1) (func))
func noExportModule() []byte {
	return wasmModule(
		section(1, vec(funcType(nil, nil))),
		section(3, vec(leb(0))),
		section(5, vec([]byte{0x00, 0x01})),
		section(7, vec(cat(str("memory"), []byte{0x02, 0x00}))),
		section(10, vec(body())),
	)
}

// importFuncModule imports one function and exports a trivial one:
//
//	(module
//	  (import "<mod>" "<name>" (func (param ...) (result ...)))
//	  (func (export "f")))
func importFuncModule(mod, name string, params, results []byte) []byte {
	return wasmModule(
		section(1, vec(funcType(params, results), funcType(nil, nil))),
		section(2, vec(cat(str(mod), str(name), []byte{0x00}, leb(0)))),
		section(3, vec(leb(1))),
		section(7, vec(exportFunc("f", 1))), // index 1: the import is 0
		section(10, vec(body())),
	)
}

// importOtherModule imports a non-function (desc is the kind byte and its
// type) and exports a trivial function:
//
//	(module
//	  (import "<mod>" "<name>" (memory 1))        ;; desc 0x02 0x00 0x01
//	  (import "<mod>" "<name>" (global i32))      ;; desc 0x03 0x7f 0x00
//	  (import "<mod>" "<name>" (table 1 funcref)) ;; desc 0x01 0x70 0x00 0x01
//	  (func (export "f")))
func importOtherModule(mod, name string, desc []byte) []byte {
	return wasmModule(
		section(1, vec(funcType(nil, nil))),
		section(2, vec(cat(str(mod), str(name), desc))),
		section(3, vec(leb(0))),
		section(7, vec(exportFunc("f", 0))),
		section(10, vec(body())),
	)
}

var (
	memoryDesc = []byte{0x02, 0x00, 0x01}
	globalDesc = []byte{0x03, tI32, 0x00}
	tableDesc  = []byte{0x01, 0x70, 0x00, 0x01}
)

// fdWriteModule imports the allowed WASI fd_write with its real type:
//
//	(module
//	  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
//	  (func (export "f")))
func fdWriteModule() []byte {
	return importFuncModule("wasi_snapshot_preview1", "fd_write", []byte{tI32, tI32, tI32, tI32}, []byte{tI32})
}

// rep is unit repeated n times.
func rep(n int, unit ...byte) []byte {
	out := make([]byte, 0, n*len(unit))
	for range n {
		out = append(out, unit...)
	}
	return out
}

// codeModule has one function, (export "f") (param i32) (local i32 ×
// locals), whose body is instrs then `end`.
func codeModule(locals uint32, instrs []byte) []byte {
	code := cat(vec(cat(leb(locals), []byte{tI32})), instrs, []byte{0x0b})
	if locals == 0 {
		code = cat([]byte{0x00}, instrs, []byte{0x0b})
	}
	return wasmModule(
		section(1, vec(funcType([]byte{tI32}, nil))),
		section(3, vec(leb(0))),
		section(7, vec(exportFunc("f", 0))),
		section(10, vec(cat(leb(uint32(len(code))), code))),
	)
}

// readLocals is local.get i; drop for i in 1..n.
func readLocals(n int) []byte {
	var out []byte
	for i := 1; i <= n; i++ {
		out = cat(out, []byte{0x20}, leb(uint32(i)), []byte{0x1a})
	}
	return out
}

// nestedBlocks is n blocks, each in the one before.
func nestedBlocks(n int) []byte { return cat(rep(n, 0x02, 0x40), rep(n, 0x0b)) }

// hugeTableModule is test/hostile/huge_table.wat:
//
//	(module
//	  (table $t 100000000 funcref)
//	  (elem declare func $add)
//	  (func $add (export "add") (param i64 i64) (result i64)
//	    (table.fill $t (i32.const 0) (ref.func $add) (table.size $t))
//	    (i64.add (local.get 0) (local.get 1))))
func hugeTableModule() []byte {
	return wasmModule(
		section(1, vec(funcType([]byte{tI64, tI64}, []byte{tI64}))),
		section(3, vec(leb(0))),
		section(4, vec(cat([]byte{0x70, 0x00}, leb(100_000_000)))),
		section(7, vec(exportFunc("add", 0))),
		section(9, vec([]byte{0x03, 0x00, 0x01, 0x00})), // declarative, funcref, [$add]
		section(10, vec(body(0x41, 0x00, 0xd2, 0x00, 0xfc, 0x10, 0x00, 0xfc, 0x11, 0x00, 0x20, 0x00, 0x20, 0x01, 0x7c))),
	)
}
