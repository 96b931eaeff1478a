package sectest

// Malformed and pathological modules, built byte by byte: a text format
// cannot express most of them.

// header is the WebAssembly binary magic and version 1.
var header = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

func uleb(v uint64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func section(id byte, body ...[]byte) []byte {
	b := cat(body...)
	return cat([]byte{id}, uleb(uint64(len(b))), b)
}

func name(s string) []byte { return cat(uleb(uint64(len(s))), []byte(s)) }

// customSection is a custom section: ignored by every runtime, so it can
// tag a module without changing its code.
func customSection(n string, payload []byte) []byte {
	return section(0, name(n), payload)
}

// Section ids and opcodes used below.
const (
	secType   = 1
	secImport = 2
	secFunc   = 3
	secMemory = 5
	secExport = 7
	secCode   = 10
	secData   = 11
	opEnd     = 0x0b
)

// typeVoid is a type section with the one type () -> ().
var typeVoid = section(secType, uleb(1), []byte{0x60, 0, 0})

// oneFunc is a function section declaring one function of type 0.
var oneFunc = section(secFunc, uleb(1), uleb(0))

// exportF exports function 0 as "f".
var exportF = section(secExport, uleb(1), name("f"), []byte{0}, uleb(0))

// code is a code section with one body (locals and instructions).
func code(body []byte) []byte {
	return section(secCode, uleb(1), uleb(uint64(len(body))), body)
}

// emptyBody is a body with no locals that just ends.
var emptyBody = []byte{0, opEnd}

// generated are the modules of "gen:NAME" artifacts.
var generated = map[string]func() []byte{
	// An ELF executable's header where the wasm magic should be.
	"bad_magic": func() []byte { return cat([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0}, make([]byte, 56)) },
	// A component (binary version 0x0d, layer 1) instead of a core module.
	"component": func() []byte { return []byte{0, 'a', 's', 'm', 0x0d, 0, 1, 0} },
	// Six bytes: the header cut short.
	"truncated_header": func() []byte { return header[:6] },
	// A type section that declares 127 bytes and holds 3.
	"section_overrun": func() []byte { return cat(header, []byte{secType, 0x7f, 1, 0x60, 0}) },
	// 2^32-1 types declared in a 6-byte section.
	"type_count_bomb": func() []byte { return cat(header, section(secType, uleb(0xffffffff))) },
	// The 15-byte module that declares 2^32-1 imports: wazero's decoder
	// would size an allocation from the count.
	"import_count_bomb": func() []byte { return cat(header, section(secImport, uleb(0xffffffff))) },
	// A section size in a 6-byte LEB128 (the limit for u32 is 5).
	"leb_too_long": func() []byte { return cat(header, []byte{secType, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}) },
	// A 5-byte LEB128 whose last byte sets bits above 32.
	"leb_overflow": func() []byte { return cat(header, []byte{secType, 0xff, 0xff, 0xff, 0xff, 0x7f}) },
	// The export section before the type section.
	"section_order": func() []byte {
		return cat(header, exportF, typeVoid, oneFunc, code(emptyBody))
	},
	// Two type sections.
	"section_repeated": func() []byte {
		return cat(header, typeVoid, typeVoid, oneFunc, exportF, code(emptyBody))
	},
	// A section id no proposal defines.
	"unknown_section": func() []byte { return cat(header, section(0x2a, []byte{1, 2, 3})) },
	// Two exports named "f".
	"duplicate_export": func() []byte {
		exports := section(secExport, uleb(2), name("f"), []byte{0}, uleb(0), name("f"), []byte{0}, uleb(0))
		return cat(header, typeVoid, oneFunc, exports, code(emptyBody))
	},
	// An export name that is not UTF-8 (it would end up in logs and JSON).
	"export_not_utf8": func() []byte {
		exports := section(secExport, uleb(1), uleb(3), []byte{0xff, 0xfe, '\n'}, []byte{0}, uleb(0))
		return cat(header, typeVoid, oneFunc, exports, code(emptyBody))
	},
	// Two memories (multi-memory), to confuse which one the host reads.
	"two_memories": func() []byte {
		mems := section(secMemory, uleb(2), []byte{0}, uleb(1), []byte{0}, uleb(1))
		return cat(header, typeVoid, oneFunc, mems, exportF, code(emptyBody))
	},
	// A data segment that claims 2 GiB and carries 3 bytes.
	"data_length_lie": func() []byte {
		mem := section(secMemory, uleb(1), []byte{0}, uleb(1))
		data := section(secData, uleb(1), uleb(0), []byte{0x41, 0, opEnd}, uleb(0x7fffffff), []byte("abc"))
		return cat(header, typeVoid, oneFunc, mem, exportF, code(emptyBody), data)
	},
	// A function declaring a million i64 locals (8 MB of stack per call).
	"locals_bomb": func() []byte {
		return cat(header, typeVoid, oneFunc, exportF, code(cat(uleb(1), uleb(1_000_000), []byte{0x7e, opEnd})))
	},
	// A "name" section whose local-names map claims 16 million entries.
	"name_section_bomb": func() []byte {
		sub := cat([]byte{2}, uleb(5), uleb(0xffffff), []byte{0})
		return cat(header, typeVoid, oneFunc, exportF, code(emptyBody), customSection("name", sub))
	},
	// A body that adds an i64 to an i32: fails type validation.
	"invalid_body": func() []byte {
		body := []byte{0, 0x41, 1, 0x42, 1, 0x6a, 0x1a, opEnd} // i32.const 1; i64.const 1; i32.add; drop
		return cat(header, typeVoid, oneFunc, exportF, code(body))
	},
	// A body without its final end.
	"body_without_end": func() []byte {
		return cat(header, typeVoid, oneFunc, exportF, code([]byte{0, 0x01})) // nop, no end
	},
	// 30,000 nested blocks in a 90 KB function: validation and
	// compilation work that grows with the square of the depth.
	"nested_blocks": func() []byte { return nestedBlocks(30_000) },
}

func nestedBlocks(depth int) []byte {
	body := make([]byte, 0, 3*depth+2)
	body = append(body, 0) // no locals
	for range depth {
		body = append(body, 0x02, 0x40) // block (no result)
	}
	for range depth {
		body = append(body, opEnd)
	}
	body = append(body, opEnd)
	return cat(header, typeVoid, oneFunc, exportF, code(body))
}
