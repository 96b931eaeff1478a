// Package wasmenc writes WebAssembly binary modules: sections, LEB128
// numbers, vectors, names, function types and code bodies. It is the one
// encoder of the programs and tests that assemble modules by hand: the
// worker's direct-ABI driver, the security suite's malformed modules and
// the tests of the module scanner.
//
// It checks nothing: what it is given, it writes, so that a caller can
// also write a count that lies, a body without its final end or sections
// out of order. It runs wherever its caller does and depends on the
// standard library alone.
package wasmenc

// Section ids.
const (
	SecCustom    byte = 0
	SecType      byte = 1
	SecImport    byte = 2
	SecFunction  byte = 3
	SecTable     byte = 4
	SecMemory    byte = 5
	SecGlobal    byte = 6
	SecExport    byte = 7
	SecStart     byte = 8
	SecElement   byte = 9
	SecCode      byte = 10
	SecData      byte = 11
	SecDataCount byte = 12
	SecTag       byte = 13
)

// Value types.
const (
	I32       byte = 0x7f
	I64       byte = 0x7e
	F32       byte = 0x7d
	F64       byte = 0x7c
	V128      byte = 0x7b
	FuncRef   byte = 0x70
	ExternRef byte = 0x6f
)

// Import and export kinds.
const (
	ExternFunc   byte = 0
	ExternTable  byte = 1
	ExternMemory byte = 2
	ExternGlobal byte = 3
	ExternTag    byte = 4
)

// Opcodes a module cannot do without.
const (
	OpEnd      byte = 0x0b // ends a block and every function body
	BlockEmpty byte = 0x40 // the block type of a block without results
)

// Module is the binary header ("\0asm", version 1) followed by sections;
// Module() alone is the header.
func Module(sections ...[]byte) []byte {
	return Cat([]byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}, Cat(sections...))
}

// Section is a section of the given id: the byte size of contents, then
// contents.
func Section(id byte, contents ...[]byte) []byte {
	body := Cat(contents...)
	return Cat([]byte{id}, ULEB128(uint32(len(body))), body)
}

// Custom is a custom section: its name, then payload.
func Custom(name string, payload ...[]byte) []byte {
	return Section(SecCustom, Name(name), Cat(payload...))
}

// Cat concatenates parts into a new slice.
func Cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Rep is unit repeated n times.
func Rep(n int, unit ...byte) []byte {
	out := make([]byte, 0, n*len(unit))
	for range n {
		out = append(out, unit...)
	}
	return out
}

// ULEB128 encodes v as unsigned LEB128, the encoding of every count,
// index and size in the binary format.
func ULEB128(v uint32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

// SLEB128 encodes v as signed LEB128, the encoding of i32.const's
// immediate.
func SLEB128(v int32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v == 0 && b&0x40 == 0 || v == -1 && b&0x40 != 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

// Vec is a vector: the number of items, then the items.
func Vec(items ...[]byte) []byte {
	return Cat(ULEB128(uint32(len(items))), Cat(items...))
}

// Name is a name: its byte length, then its bytes (UTF-8 for a valid
// module; Name does not check).
func Name(s string) []byte { return Cat(ULEB128(uint32(len(s))), []byte(s)) }

// FuncType is the function type (func (param params...) (result
// results...)), each a value type.
func FuncType(params, results []byte) []byte {
	return Cat([]byte{0x60}, ULEB128(uint32(len(params))), params, ULEB128(uint32(len(results))), results)
}

// Import is an import entry: module and name, then the kind and what
// describes it (a type index for a function, limits for a memory, …).
func Import(module, name string, kind byte, desc ...[]byte) []byte {
	return Cat(Name(module), Name(name), []byte{kind}, Cat(desc...))
}

// Export is an export entry of the kind's item at index.
func Export(name string, kind byte, index uint32) []byte {
	return Cat(Name(name), []byte{kind}, ULEB128(index))
}

// Local declares N locals of one value type in a function body.
type Local struct {
	N    uint32
	Type byte
}

// Body is an entry of the code section: the byte size of the function
// body, then the body: the declarations of locals, then code, the
// instructions. Body adds no final end (OpEnd): the caller writes it, or
// leaves it out on purpose.
func Body(locals []Local, code ...[]byte) []byte {
	decls := make([][]byte, len(locals))
	for i, l := range locals {
		decls[i] = Cat(ULEB128(l.N), []byte{l.Type})
	}
	body := Cat(Vec(decls...), Cat(code...))
	return Cat(ULEB128(uint32(len(body))), body)
}
