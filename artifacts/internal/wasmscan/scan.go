package wasmscan

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Implementation limits. Most are those of the WebAssembly JS API, which
// browsers enforce; the rest bound work that wazero's decoder and compiler
// do in proportion to a product of counts. scanModule enforces them, and
// checks that every count and length in the binary is backed by bytes that
// are actually there, before any byte reaches wazero: wazero sizes
// allocations from the declared counts (a 15-byte module declaring 2^32
// imports makes it allocate hundreds of gigabytes and kills the process).
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

var sectionNames = [...]string{"custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "data count", "tag"}

// sectionRank is the position a non-custom section must have in a module.
var sectionRank = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11,
	secCode: 12, secData: 13,
}

// errTruncated is the cause for reads past the end of a section.
var errTruncated = errors.New("unexpected end")

// ParseImports returns every entry of the module's import section (module,
// name, kind). It first walks the whole binary with bounds checks and
// implementation limits (every count must be backed by bytes, sizes must
// agree with contents), so it is safe on hostile input; errors wrap
// ErrInvalidModule and name the first problem.
func ParseImports(wasm []byte) ([]RawImport, error) {
	imps, err := scanModule(wasm)
	if err != nil && !errors.Is(err, ErrInvalidModule) {
		err = fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	return imps, err
}

// moduleScan is the state of one scanModule run.
type moduleScan struct {
	imports      []RawImport
	funcs        uint64 // imported + defined
	exports      uint64
	localNames   uint64 // entries in the name section's local-names map
	totalLocals  uint64
	totalTypes   uint64
	sawNameField bool
	tables       []tableLimits // by index: imported (unsized), then defined
	elements     uint64        // in all element segments
	bodies       int           // function bodies scanned
	work         int64         // flowModel work of all function bodies
	maxWork      int64

	// What Describe needs to know a module without compiling it.
	wasm      []byte
	base      int         // offset in wasm of the section being scanned
	types     []uint32    // offset in wasm of every type (rec groups flattened); see typeAt
	funcTypes []uint32    // type index of every function: imported, then defined
	exportsOf []rawExport // the export section
}

// typeAt decodes type i again from the binary: 4 bytes a type kept while
// scanning, not a decoded copy of every one.
func (m *moduleScan) typeAt(i uint32) funcSig {
	r := &reader{buf: m.wasm, pos: int(m.types[i])}
	sig, _ := r.funcType(true) // scanned once already
	return sig
}

// funcSig is a function type: its parameter and result value types, each
// the type's first byte in the binary (api.ValueType for numeric types).
type funcSig struct{ params, results []byte }

// rawExport is one entry of the export section.
type rawExport struct {
	name  string
	kind  byte // as RawImport.Kind
	index uint32
}

// tableLimits is a table's declared size and whether the code grows it.
type tableLimits struct {
	min, max uint32
	hasMax   bool
	grown    bool
}

// scanModule walks every section of a wasm binary with a bounds-checked
// reader, following the grammar wazero v1.12's decoder uses, and rejects
// anything malformed, any count larger than the bytes that would hold it,
// and anything over the implementation limits. It returns the imports. It
// does not validate types or code; wazero does that afterwards, on input
// whose sizes are now known to be sane. It walks function bodies' control
// flow only to bound what compiling them will cost (see flowModel).
func scanModule(wasm []byte) ([]RawImport, error) {
	m, err := scan(wasm)
	if err != nil {
		return nil, err
	}
	return m.imports, nil
}

// scan is scanModule returning all it learnt.
func scan(wasm []byte) (*moduleScan, error) {
	if err := checkHeader(wasm); err != nil {
		return nil, err
	}
	if len(wasm) > maxModuleSize {
		return nil, fmt.Errorf("module is %d bytes, more than %d", len(wasm), maxModuleSize)
	}
	m := &moduleScan{maxWork: moduleWorkBase + moduleWorkPerByte*int64(len(wasm)), wasm: wasm}
	r := reader{buf: wasm, pos: 8}
	lastRank := 0
	for r.pos < len(r.buf) {
		id, _ := r.byte()
		name := fmt.Sprintf("section id %d", id)
		if int(id) < len(sectionNames) {
			name = sectionNames[id] + " section"
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
			rank, ok := sectionRank[id]
			if !ok {
				return nil, fmt.Errorf("unknown section id %d", id)
			}
			if rank <= lastRank {
				return nil, fmt.Errorf("%s is out of order or repeated", name)
			}
			lastRank = rank
		}
		sr := &reader{buf: body}
		m.base = r.pos - len(body)
		if err := m.section(id, sr); err != nil {
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
	return m, nil
}

func (m *moduleScan) section(id byte, r *reader) error {
	switch id {
	case secCustom:
		name, err := r.name()
		if err != nil {
			return fmt.Errorf("name: %w", err)
		}
		if name != "name" {
			r.pos = len(r.buf) // opaque; wazero skips it
			return nil
		}
		if m.sawNameField {
			return errors.New(`second "name" section`)
		}
		m.sawNameField = true
		return m.nameSection(r)
	case secType:
		n, err := r.count(maxTypes, "types")
		if err != nil {
			return err
		}
		m.types = slices.Grow(m.types, int(n)) // n is backed by bytes (count)
		for i := uint32(0); i < n; i++ {
			b, err := r.byte()
			if err != nil {
				return err
			}
			members := uint32(1)
			if b == 0x4e { // rec group (GC proposal)
				if members, err = r.count(maxTypes, "rec group members"); err != nil {
					return err
				}
			} else {
				r.pos--
			}
			m.totalTypes += uint64(members)
			if m.totalTypes > maxTypes {
				return fmt.Errorf("more than %d types", maxTypes)
			}
			for j := uint32(0); j < members; j++ {
				m.types = append(m.types, uint32(m.base+r.pos))
				if _, err := r.funcType(false); err != nil {
					return fmt.Errorf("type %d: %w", i, err)
				}
			}
		}
	case secImport:
		n, err := r.count(maxImports, "imports")
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			imp, typeIdx, err := r.importEntry()
			if err != nil {
				return fmt.Errorf("import %d: %w", i, err)
			}
			switch imp.Kind {
			case importFunc:
				m.funcs++
				m.funcTypes = append(m.funcTypes, typeIdx)
			case importTable: // numbered before defined tables; sized by the host
				m.tables = append(m.tables, tableLimits{})
			}
			m.imports = append(m.imports, imp)
		}
	case secFunction:
		n, err := r.count(maxFunctions, "functions")
		if err != nil {
			return err
		}
		if m.funcs += uint64(n); m.funcs > maxFunctions {
			return fmt.Errorf("more than %d functions", maxFunctions)
		}
		m.funcTypes = slices.Grow(m.funcTypes, int(n))
		for i := uint32(0); i < n; i++ {
			t, err := r.u32()
			if err != nil {
				return err
			}
			m.funcTypes = append(m.funcTypes, t)
		}
	case secTable:
		n, err := r.count(maxTables, "tables")
		if err != nil {
			return err
		}
		var total uint64
		for i := uint32(0); i < n; i++ {
			t, err := r.tableType()
			if err != nil {
				return fmt.Errorf("table %d: %w", i, err)
			}
			if total += uint64(t.min); total > maxTableElements {
				return fmt.Errorf("table %d: initial size %d elements brings the tables to %d, more than %d (every instance allocates 8 bytes an element)", i, t.min, total, maxTableElements)
			}
			m.tables = append(m.tables, t)
		}
	case secMemory:
		n, err := r.u32()
		if err != nil {
			return err
		}
		if n > 1 {
			return fmt.Errorf("%d memories, at most 1 allowed", n)
		}
		if n == 1 {
			_, err := r.limits()
			return err
		}
	case secTag:
		n, err := r.count(maxTags, "tags")
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if _, err := r.byte(); err != nil {
				return err
			}
			if _, err := r.u32(); err != nil {
				return err
			}
		}
	case secGlobal:
		n, err := r.count(maxGlobals, "globals")
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if err := r.valType(); err != nil {
				return fmt.Errorf("global %d: %w", i, err)
			}
			if _, err := r.byte(); err != nil { // mutability
				return err
			}
			if err := r.constExpr(); err != nil {
				return fmt.Errorf("global %d: %w", i, err)
			}
		}
	case secExport:
		n, err := r.count(maxExports, "exports")
		if err != nil {
			return err
		}
		m.exports = uint64(n)
		m.exportsOf = slices.Grow(m.exportsOf, int(n))
		for i := uint32(0); i < n; i++ {
			name, err := r.name()
			if err != nil {
				return fmt.Errorf("export %d name: %w", i, err)
			}
			kind, err := r.byte()
			if err != nil {
				return err
			}
			if kind > importTag {
				return fmt.Errorf("export %d: unknown kind 0x%02x", i, kind)
			}
			idx, err := r.u32()
			if err != nil {
				return err
			}
			m.exportsOf = append(m.exportsOf, rawExport{name: name, kind: kind, index: idx})
		}
	case secStart, secDataCount:
		_, err := r.u32()
		return err
	case secElement:
		n, err := r.count(maxElementSegments, "element segments")
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			elems, err := r.elementSegment()
			if err != nil {
				return fmt.Errorf("element segment %d: %w", i, err)
			}
			if m.elements += uint64(elems); m.elements > maxElements {
				return fmt.Errorf("element segment %d: %d elements bring the segments to %d, more than %d (every instance allocates ~40 bytes an element)", i, elems, m.elements, maxElements)
			}
		}
	case secCode:
		n, err := r.count(maxFunctions, "function bodies")
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if err := m.code(r); err != nil {
				return fmt.Errorf("function body %d: %w", i, err)
			}
		}
	case secData:
		n, err := r.count(maxDataSegments, "data segments")
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if err := r.dataSegment(); err != nil {
				return fmt.Errorf("data segment %d: %w", i, err)
			}
		}
	}
	return nil
}

func (m *moduleScan) code(r *reader) error {
	size, err := r.u32()
	if err != nil {
		return err
	}
	if size > maxFunctionSize {
		return fmt.Errorf("%d bytes, more than %d", size, maxFunctionSize)
	}
	body, err := r.bytes(int(size))
	if err != nil {
		return fmt.Errorf("declared size %d runs past the end of the section", size)
	}
	br := &reader{buf: body}
	groups, err := br.count(maxLocals, "local declarations")
	if err != nil {
		return err
	}
	var locals uint64
	for i := uint32(0); i < groups; i++ {
		n, err := br.u32()
		if err != nil {
			return err
		}
		if locals += uint64(n); locals > maxLocals {
			return fmt.Errorf("more than %d locals", maxLocals)
		}
		if err := br.valType(); err != nil {
			return err
		}
	}
	if m.totalLocals += locals; m.totalLocals > maxTotalLocals {
		return fmt.Errorf("more than %d locals in the module", maxTotalLocals)
	}
	st, err := br.instrs()
	if err != nil {
		return err
	}
	return m.addBody(st)
}

// nameSection checks the "name" custom section: wazero decodes its module
// name, function names and local names (and sizes allocations from their
// counts); other subsections it skips by size.
func (m *moduleScan) nameSection(r *reader) error {
	for r.pos < len(r.buf) {
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return err
		}
		body, err := r.bytes(int(size))
		if err != nil {
			return fmt.Errorf("subsection %d: declared size %d runs past the end", id, size)
		}
		sr := &reader{buf: body}
		switch id {
		case 0: // module name
			if _, err := sr.name(); err != nil {
				return fmt.Errorf("module name: %w", err)
			}
		case 1: // function names
			n, err := sr.count(maxFunctions, "function names")
			if err != nil {
				return err
			}
			for i := uint32(0); i < n; i++ {
				if _, err := sr.u32(); err != nil {
					return err
				}
				if _, err := sr.name(); err != nil {
					return fmt.Errorf("function name %d: %w", i, err)
				}
			}
		case 2: // local names
			n, err := sr.count(maxFunctions, "local-name entries")
			if err != nil {
				return err
			}
			m.localNames += uint64(n)
			for i := uint32(0); i < n; i++ {
				if _, err := sr.u32(); err != nil {
					return err
				}
				locals, err := sr.count(maxLocals, "local names")
				if err != nil {
					return err
				}
				for j := uint32(0); j < locals; j++ {
					if _, err := sr.u32(); err != nil {
						return err
					}
					if _, err := sr.name(); err != nil {
						return fmt.Errorf("local name: %w", err)
					}
				}
			}
		default:
			continue
		}
		// wazero reads these subsections without their size; a size that
		// disagrees with the contents would make it misread what follows.
		if sr.pos != len(sr.buf) {
			return fmt.Errorf("name subsection %d: size %d disagrees with its contents (%d bytes)", id, size, sr.pos)
		}
	}
	return nil
}

// reader is a bounds-checked cursor over a byte slice.
type reader struct {
	buf []byte
	pos int
}

func (r *reader) left() int { return len(r.buf) - r.pos }

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.buf) {
		return 0, errTruncated
	}
	b := r.buf[r.pos]
	r.pos++
	return b, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > r.left() {
		return nil, errTruncated
	}
	b := r.buf[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

// u32 reads an unsigned LEB128 value of at most 5 bytes that fits in 32 bits.
func (r *reader) u32() (uint32, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		if i == 4 && b&0xf0 != 0 {
			return 0, errors.New("LEB128 value overflows 32 bits")
		}
		v |= uint32(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 value longer than 5 bytes")
}

// skipLEB skips a LEB128 value of at most maxBytes bytes (signed or not).
func (r *reader) skipLEB(maxBytes int) error {
	for i := 0; i < maxBytes; i++ {
		b, err := r.byte()
		if err != nil {
			return err
		}
		if b&0x80 == 0 {
			return nil
		}
	}
	return fmt.Errorf("LEB128 value longer than %d bytes", maxBytes)
}

// count reads a vector length and checks it against limit and against the
// bytes left (every element takes at least one byte).
func (r *reader) count(limit uint32, what string) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, fmt.Errorf("number of %s: %w", what, err)
	}
	if n > limit {
		return 0, fmt.Errorf("%d %s, more than %d", n, what, limit)
	}
	if int64(n) > int64(r.left()) {
		return 0, fmt.Errorf("%d %s cannot fit in the %d bytes left", n, what, r.left())
	}
	return n, nil
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(int(n))
	if err != nil {
		return "", fmt.Errorf("length %d runs past the end", n)
	}
	if !utf8.Valid(b) {
		return "", errors.New("name is not valid UTF-8")
	}
	return string(b), nil
}

// valType reads a value type: one byte, or a reference-type prefix (0x63,
// 0x64) and a signed 33-bit heap type.
func (r *reader) valType() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	if b == 0x63 || b == 0x64 {
		return r.skipLEB(5)
	}
	return nil
}

// funcType reads a function type; with collect, it also returns it
// (without, it allocates nothing: the scan reads every type once).
func (r *reader) funcType(collect bool) (sig funcSig, err error) {
	b, err := r.byte()
	if err != nil {
		return funcSig{}, err
	}
	if b != 0x60 {
		return funcSig{}, fmt.Errorf("function type starts with 0x%02x, want 0x60", b)
	}
	if sig.params, err = r.valTypes(maxParams, "parameters", collect); err != nil {
		return funcSig{}, err
	}
	if sig.results, err = r.valTypes(maxResults, "results", collect); err != nil {
		return funcSig{}, err
	}
	return sig, nil
}

// valTypes reads a vector of value types, returning each one's first byte
// if collect.
func (r *reader) valTypes(limit uint32, what string, collect bool) ([]byte, error) {
	n, err := r.count(limit, what)
	if err != nil {
		return nil, err
	}
	var out []byte
	for i := uint32(0); i < n; i++ {
		first := r.pos
		if err := r.valType(); err != nil {
			return nil, err
		}
		if collect {
			out = append(out, r.buf[first])
		}
	}
	return out, nil
}

// limits reads memory or table limits: flag 0-3, min and optional max.
func (r *reader) limits() (l tableLimits, err error) {
	flag, err := r.byte()
	if err != nil {
		return l, err
	}
	if flag > 3 {
		return l, fmt.Errorf("limits flag 0x%02x", flag)
	}
	if l.min, err = r.u32(); err != nil {
		return l, err
	}
	if l.hasMax = flag&1 != 0; l.hasMax {
		l.max, err = r.u32()
	}
	return l, err
}

// tableType reads a table type as wazero does, including the 0x40 0x00
// prefix of a table with an initializer expression.
func (r *reader) tableType() (tableLimits, error) {
	b, err := r.byte()
	if err != nil {
		return tableLimits{}, err
	}
	hasInit := false
	if b == 0x40 {
		if z, err := r.byte(); err != nil || z != 0 {
			return tableLimits{}, errors.New("bad table initializer prefix")
		}
		hasInit = true
	} else {
		r.pos--
	}
	if err := r.valType(); err != nil {
		return tableLimits{}, err
	}
	l, err := r.limits()
	if err == nil && hasInit {
		err = r.constExpr()
	}
	return l, err
}

// importEntry reads an import; for a function import it also returns its
// type index.
func (r *reader) importEntry() (RawImport, uint32, error) {
	mod, err := r.name()
	if err != nil {
		return RawImport{}, 0, fmt.Errorf("module name: %w", err)
	}
	name, err := r.name()
	if err != nil {
		return RawImport{}, 0, fmt.Errorf("name: %w", err)
	}
	kind, err := r.byte()
	if err != nil {
		return RawImport{}, 0, err
	}
	imp := RawImport{Module: mod, Name: name, Kind: kind}
	var typeIdx uint32
	switch kind {
	case importFunc:
		typeIdx, err = r.u32()
	case importTable:
		_, err = r.tableType()
	case importMemory:
		_, err = r.limits()
	case importGlobal:
		if err = r.valType(); err == nil {
			_, err = r.byte() // mutability
		}
	case importTag:
		if _, err = r.byte(); err == nil {
			_, err = r.u32()
		}
	default:
		err = fmt.Errorf("unknown import kind 0x%02x", kind)
	}
	if err != nil {
		return RawImport{}, 0, fmt.Errorf("%s: %w", quoteName(mod+"."+name), err)
	}
	return imp, typeIdx, nil
}

// constExpr reads a constant expression up to and including its end.
func (r *reader) constExpr() error {
	for {
		op, err := r.byte()
		if err != nil {
			return fmt.Errorf("constant expression: %w", err)
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41: // i32.const
			err = r.skipLEB(5)
		case 0x42: // i64.const
			err = r.skipLEB(10)
		case 0x43: // f32.const
			_, err = r.bytes(4)
		case 0x44: // f64.const
			_, err = r.bytes(8)
		case 0x23, 0xd2: // global.get, ref.func
			_, err = r.u32()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const arithmetic
		case 0xd0: // ref.null
			var t byte
			if t, err = r.byte(); err == nil && t != 0x70 && t != 0x6f && t != 0x69 {
				r.pos--
				_, err = r.u32()
			}
		case 0xfd: // v128.const
			var sub byte
			if sub, err = r.byte(); err == nil {
				if sub != 0x0c {
					return fmt.Errorf("constant expression: vector opcode 0x%02x", sub)
				}
				_, err = r.bytes(16)
			}
		default:
			return fmt.Errorf("constant expression: opcode 0x%02x not allowed", op)
		}
		if err != nil {
			return fmt.Errorf("constant expression: %w", err)
		}
	}
}

// elementSegment reads an element segment and returns how many elements it
// has.
func (r *reader) elementSegment() (uint32, error) {
	prefix, err := r.u32()
	if err != nil {
		return 0, err
	}
	var n uint32
	step := func(fs ...func() error) error {
		for _, f := range fs {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	}
	kindByte := func() error { _, err := r.byte(); return err }
	tableIdx := func() error { _, err := r.u32(); return err }
	funcIdxs := func() error {
		if n, err = r.count(maxElements, "elements"); err != nil {
			return err
		}
		return r.u32s(int(n))
	}
	exprs := func() error {
		if n, err = r.count(maxElements, "elements"); err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if err := r.constExpr(); err != nil {
				return err
			}
		}
		return nil
	}
	switch prefix {
	case 0:
		err = step(r.constExpr, funcIdxs)
	case 1, 3:
		err = step(kindByte, funcIdxs)
	case 2:
		err = step(tableIdx, r.constExpr, kindByte, funcIdxs)
	case 4:
		err = step(r.constExpr, exprs)
	case 5, 7:
		err = step(r.valType, exprs)
	case 6:
		err = step(tableIdx, r.constExpr, r.valType, exprs)
	default:
		err = fmt.Errorf("unknown element segment prefix %d", prefix)
	}
	return n, err
}

func (r *reader) dataSegment() error {
	prefix, err := r.u32()
	if err != nil {
		return err
	}
	switch prefix {
	case 0:
		err = r.constExpr()
	case 1:
	case 2:
		if _, err = r.u32(); err == nil {
			err = r.constExpr()
		}
	default:
		return fmt.Errorf("unknown data segment prefix %d", prefix)
	}
	if err != nil {
		return err
	}
	n, err := r.u32()
	if err != nil {
		return err
	}
	if _, err := r.bytes(int(n)); err != nil {
		return fmt.Errorf("%d bytes of data run past the end of the section", n)
	}
	return nil
}
