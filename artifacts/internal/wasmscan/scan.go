package wasmscan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Implementation limits. Most are those of the WebAssembly JS API, which
// browsers enforce; the rest bound work that wazero's decoder and compiler
// do in proportion to a product of counts. Scan enforces them, and checks
// that every count and length in the binary is backed by bytes that are
// actually there, before any byte reaches wazero: wazero sizes
// allocations from the declared counts (a 15-byte module declaring 2^32
// imports makes it allocate hundreds of gigabytes and kills the process).
// `go run ./artifacts/internal/wasmscan/costmodel` measures what wazero
// spends on modules right at them.
const (
	maxModuleSize   = 1 << 30
	maxTypes        = 1_000_000
	maxFunctions    = 1_000_000 // imported and defined
	maxImports      = 100_000
	maxExports      = 100_000
	maxTags         = 1_000_000
	maxDataSegments = 100_000
	maxFunctionSize = 7_654_321
	maxParams       = 1_000
	maxResults      = 1_000
	maxLocals       = 50_000     // per function
	maxTotalLocals  = 16_000_000 // whole module
	// wazero builds function definitions by scanning, for every function,
	// all exports and all local-name entries.
	maxFuncScanWork = 500_000_000

	// What every instance allocates, outside the linear-memory limit:
	// 8 bytes per table element, ~40 per element of an element segment,
	// ~90 per global. Go's wasip1 guests have one table of 4096 + (number
	// of functions) elements (~6,000 in bin/examples), one element segment
	// with an element per function, and a handful of globals; LLVM's
	// guests have fewer.
	maxTableElements   = 1 << 20 // all tables: 8 MiB per instance
	maxElements        = 1 << 20 // all element segments: ~40 MiB per instance
	maxGlobals         = 100_000 // ~9 MiB per instance
	maxTables          = 1_000
	maxElementSegments = 100_000

	// Compiling a function with wazero's optimizing compiler takes, beyond
	// time in proportion to its size, ~0.3-4 ns per unit of its flowModel
	// work on this project's 2-core Xeon VM. Go guests' largest functions
	// weigh up to 710,000 and 9-10 a byte in all; LLVM's (zig cc, Rust,
	// TinyGo) up to 3.6 million and 2-130 a byte. 30,000 nested blocks
	// weigh 900 million.
	maxControlDepth   = 10_000      // Go guests: 549 at most, LLVM's: 34
	maxFunctionWork   = 100_000_000 // ≤ 0.5 s
	moduleWorkBase    = 100_000_000
	moduleWorkPerByte = 64 // large LLVM modules weigh up to ~46 a byte
)

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sections has, for every section id, the section's name in errors, the
// position a non-custom section must have in a module, and the function
// that scans its contents (what follows its id and size).
var sections = [...]struct {
	name string
	rank int
	scan func(*moduleScan, *reader) error
}{
	secCustom:    {"custom", 0, (*moduleScan).customSection},
	secType:      {"type", 1, (*moduleScan).typeSection},
	secImport:    {"import", 2, (*moduleScan).importSection},
	secFunction:  {"function", 3, (*moduleScan).functionSection},
	secTable:     {"table", 4, (*moduleScan).tableSection},
	secMemory:    {"memory", 5, (*moduleScan).memorySection},
	secTag:       {"tag", 6, (*moduleScan).tagSection},
	secGlobal:    {"global", 7, (*moduleScan).globalSection},
	secExport:    {"export", 8, (*moduleScan).exportSection},
	secStart:     {"start", 9, (*moduleScan).startSection},
	secElement:   {"element", 10, (*moduleScan).elementSection},
	secDataCount: {"data count", 11, (*moduleScan).dataCountSection},
	secCode:      {"code", 12, (*moduleScan).codeSection},
	secData:      {"data", 13, (*moduleScan).dataSection},
}

// errTruncated is the cause for reads past the end of a section.
var errTruncated = errors.New("unexpected end")

// moduleScan is the state of one Scan: the Module it learns, and the
// counts the limits apply to.
type moduleScan struct {
	Module
	funcs        uint64 // imported + defined
	exports      uint64
	localNames   uint64 // entries in the name section's local-names map
	totalLocals  uint64
	totalTypes   uint64
	sawNameField bool
	tables       []tableLimits // by index: imported (unsized), then defined
	elements     uint64        // in all element segments
	bodies       int           // function bodies scanned
	maxWork      int64
	base         int // offset in wasm of the section being scanned
}

// tableLimits is a table's declared size and whether the code grows it.
type tableLimits struct {
	min, max uint32
	hasMax   bool
	grown    bool
}

// CheckHeader gives a clear error for inputs that are not wasm at all:
// too short, not the magic, not version 1.
func CheckHeader(wasm []byte) error {
	magic := []byte{0x00, 'a', 's', 'm'}
	if len(wasm) < 8 {
		if len(wasm) >= 4 && !bytes.Equal(wasm[:4], magic) || len(wasm) < 4 && !bytes.HasPrefix(magic, wasm) {
			return errors.New("not a WebAssembly module (bad magic)")
		}
		return fmt.Errorf("truncated: %d bytes, a WebAssembly header alone is 8", len(wasm))
	}
	if !bytes.Equal(wasm[:4], magic) {
		return errors.New("not a WebAssembly module (bad magic)")
	}
	if v := binary.LittleEndian.Uint32(wasm[4:8]); v != 1 {
		return fmt.Errorf("unsupported WebAssembly binary version %d (want 1; components are not supported)", v)
	}
	return nil
}

// Scan walks every section of a wasm binary with a bounds-checked reader,
// following the grammar wazero v1.12's decoder uses, and refuses anything
// malformed, any count larger than the bytes that would hold it, and
// anything over the implementation limits; the error names the first
// problem. It walks function bodies' control flow only to bound what
// compiling them will cost (see flowModel). Its memory is in proportion to
// the module's counts of types, functions, imports and exports, not to its
// code.
func Scan(wasm []byte) (*Module, error) {
	if err := CheckHeader(wasm); err != nil {
		return nil, err
	}
	if len(wasm) > maxModuleSize {
		return nil, fmt.Errorf("module is %d bytes, more than %d", len(wasm), maxModuleSize)
	}
	m := &moduleScan{maxWork: moduleWorkBase + moduleWorkPerByte*int64(len(wasm)), Module: Module{wasm: wasm}}
	r := reader{buf: wasm, pos: 8}
	lastRank := 0
	for r.pos < len(r.buf) {
		id, _ := r.byte()
		name := fmt.Sprintf("section id %d", id)
		if int(id) < len(sections) {
			name = sections[id].name + " section"
		}
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("%s size: %w", name, err)
		}
		body, err := r.bytes(int(size))
		if err != nil {
			return nil, fmt.Errorf("%s: declared size %d runs past the end of the module (%d bytes left)", name, size, len(r.buf)-r.pos)
		}
		if id != secCustom {
			if int(id) >= len(sections) {
				return nil, fmt.Errorf("unknown section id %d", id)
			}
			rank := sections[id].rank
			if rank <= lastRank {
				return nil, fmt.Errorf("%s is out of order or repeated", name)
			}
			lastRank = rank
		}
		sr := &reader{buf: body}
		m.base = r.pos - len(body)
		if err := sections[id].scan(m, sr); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if sr.pos != len(body) {
			return nil, fmt.Errorf("%s: %d bytes left over after its contents", name, len(body)-sr.pos)
		}
	}
	if m.funcs*(m.exports+m.localNames) > maxFuncScanWork {
		return nil, fmt.Errorf("%d functions with %d exports and %d local-name entries exceed the limit on their product (%d)", m.funcs, m.exports, m.localNames, maxFuncScanWork)
	}
	if err := m.checkTableGrowth(); err != nil {
		return nil, err
	}
	return &m.Module, nil
}
