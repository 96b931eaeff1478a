package sectest

import "github.com/udfhost/udfhost/internal/wasmenc"

// Malformed and pathological modules, built byte by byte: a text format
// cannot express most of them. testdata/generated.sha256 holds their
// digests: they are what the manifest's cases were written against.

// customSection is a custom section: ignored by every runtime, so it can
// tag a module without changing its code.
func customSection(n string, payload []byte) []byte { return wasmenc.Custom(n, payload) }

// typeVoid is a type section with the one type () -> ().
func typeVoid() []byte {
	return wasmenc.Section(wasmenc.SecType, wasmenc.Vec(wasmenc.FuncType(nil, nil)))
}

// oneFunc is a function section declaring one function of type 0.
func oneFunc() []byte { return wasmenc.Section(wasmenc.SecFunction, wasmenc.Vec(wasmenc.ULEB128(0))) }

// exportF exports function 0 as "f".
func exportF() []byte {
	return wasmenc.Section(wasmenc.SecExport, wasmenc.Vec(wasmenc.Export("f", wasmenc.ExternFunc, 0)))
}

// code is a code section with one body without locals.
func code(instrs ...byte) []byte {
	return wasmenc.Section(wasmenc.SecCode, wasmenc.Vec(wasmenc.Body(nil, instrs)))
}

// oneFuncModule is a module of the one function "f" of type () -> () with
// instrs as its body, and the sections after it.
func oneFuncModule(instrs []byte, after ...[]byte) []byte {
	return wasmenc.Module(typeVoid(), oneFunc(), exportF(), code(instrs...), wasmenc.Cat(after...))
}

// generated are the modules of "gen:NAME" artifacts.
var generated = map[string]func() []byte{
	// An ELF executable's header where the wasm magic should be.
	"bad_magic": func() []byte { return wasmenc.Cat([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0}, make([]byte, 56)) },
	// A component (binary version 0x0d, layer 1) instead of a core module.
	"component": func() []byte { return []byte{0, 'a', 's', 'm', 0x0d, 0, 1, 0} },
	// Six bytes: the header cut short.
	"truncated_header": func() []byte { return wasmenc.Module()[:6] },
	// A type section that declares 127 bytes and holds 3.
	"section_overrun": func() []byte { return wasmenc.Module([]byte{wasmenc.SecType, 0x7f, 1, 0x60, 0}) },
	// 2^32-1 types declared in a 6-byte section.
	"type_count_bomb": func() []byte {
		return wasmenc.Module(wasmenc.Section(wasmenc.SecType, wasmenc.ULEB128(0xffffffff)))
	},
	// The 15-byte module that declares 2^32-1 imports: wazero's decoder
	// would size an allocation from the count.
	"import_count_bomb": func() []byte {
		return wasmenc.Module(wasmenc.Section(wasmenc.SecImport, wasmenc.ULEB128(0xffffffff)))
	},
	// A section size in a 6-byte LEB128 (the limit for u32 is 5).
	"leb_too_long": func() []byte { return wasmenc.Module([]byte{wasmenc.SecType, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}) },
	// A 5-byte LEB128 whose last byte sets bits above 32.
	"leb_overflow": func() []byte { return wasmenc.Module([]byte{wasmenc.SecType, 0xff, 0xff, 0xff, 0xff, 0x7f}) },
	// The export section before the type section.
	"section_order": func() []byte {
		return wasmenc.Module(exportF(), typeVoid(), oneFunc(), code(wasmenc.OpEnd))
	},
	// Two type sections.
	"section_repeated": func() []byte {
		return wasmenc.Module(typeVoid(), typeVoid(), oneFunc(), exportF(), code(wasmenc.OpEnd))
	},
	// A section id no proposal defines.
	"unknown_section": func() []byte { return wasmenc.Module(wasmenc.Section(0x2a, []byte{1, 2, 3})) },
	// Two exports named "f".
	"duplicate_export": func() []byte {
		f := wasmenc.Export("f", wasmenc.ExternFunc, 0)
		return wasmenc.Module(typeVoid(), oneFunc(), wasmenc.Section(wasmenc.SecExport, wasmenc.Vec(f, f)), code(wasmenc.OpEnd))
	},
	// An export name that is not UTF-8 (it would end up in logs and JSON).
	"export_not_utf8": func() []byte {
		exports := wasmenc.Section(wasmenc.SecExport, wasmenc.Vec(wasmenc.Export("\xff\xfe\n", wasmenc.ExternFunc, 0)))
		return wasmenc.Module(typeVoid(), oneFunc(), exports, code(wasmenc.OpEnd))
	},
	// Two memories (multi-memory), to confuse which one the host reads.
	"two_memories": func() []byte {
		mems := wasmenc.Section(wasmenc.SecMemory, wasmenc.Vec([]byte{0, 1}, []byte{0, 1})) // min 1 page each
		return wasmenc.Module(typeVoid(), oneFunc(), mems, exportF(), code(wasmenc.OpEnd))
	},
	// A data segment that claims 2 GiB and carries 3 bytes.
	"data_length_lie": func() []byte {
		mem := wasmenc.Section(wasmenc.SecMemory, wasmenc.Vec([]byte{0, 1}))
		data := wasmenc.Section(wasmenc.SecData, wasmenc.Vec(wasmenc.Cat(
			wasmenc.ULEB128(0), []byte{0x41, 0, wasmenc.OpEnd}, // active, at i32.const 0
			wasmenc.ULEB128(0x7fffffff), []byte("abc"))))
		return wasmenc.Module(typeVoid(), oneFunc(), mem, exportF(), code(wasmenc.OpEnd), data)
	},
	// A function declaring a million i64 locals (8 MB of stack per call).
	"locals_bomb": func() []byte {
		body := wasmenc.Body([]wasmenc.Local{{N: 1_000_000, Type: wasmenc.I64}}, []byte{wasmenc.OpEnd})
		return wasmenc.Module(typeVoid(), oneFunc(), exportF(), wasmenc.Section(wasmenc.SecCode, wasmenc.Vec(body)))
	},
	// A "name" section whose local-names map claims 16 million entries.
	"name_section_bomb": func() []byte {
		sub := wasmenc.Cat([]byte{2}, wasmenc.ULEB128(5), wasmenc.ULEB128(0xffffff), []byte{0})
		return oneFuncModule([]byte{wasmenc.OpEnd}, customSection("name", sub))
	},
	// A body that adds an i64 to an i32: fails type validation.
	"invalid_body": func() []byte {
		return oneFuncModule([]byte{0x41, 1, 0x42, 1, 0x6a, 0x1a, wasmenc.OpEnd}) // i32.const 1; i64.const 1; i32.add; drop
	},
	// A body without its final end.
	"body_without_end": func() []byte { return oneFuncModule([]byte{0x01}) }, // nop, no end
	// 30,000 nested blocks in a 90 KB function: validation and
	// compilation work that grows with the square of the depth.
	"nested_blocks": func() []byte { return nestedBlocks(30_000) },
}

func nestedBlocks(depth int) []byte {
	return oneFuncModule(wasmenc.Cat(
		wasmenc.Rep(depth, 0x02, wasmenc.BlockEmpty), // block (no result)
		wasmenc.Rep(depth, wasmenc.OpEnd),
		[]byte{wasmenc.OpEnd}))
}
