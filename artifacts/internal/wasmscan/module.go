package wasmscan

import (
	"bytes"
	"fmt"
	"strings"
)

// Module is what Scan learnt of a module: enough for the host to know it
// without compiling it. Its slices are shared; callers must not modify
// them.
type Module struct {
	Imports []Import // the import section, in order
	Exports []Export // the export section, in order

	wasm      []byte
	types     []uint32 // offset in wasm of every type (rec groups flattened); see typeAt
	funcTypes []uint32 // type index of every function: imported, then defined
	work      int64    // flowModel work of all function bodies
}

// ExternKind is the kind of an import or export.
type ExternKind byte

// Import and export kinds in the binary format.
const (
	ExternFunc   ExternKind = 0
	ExternTable  ExternKind = 1
	ExternMemory ExternKind = 2
	ExternGlobal ExternKind = 3
	ExternTag    ExternKind = 4 // exception-handling proposal
)

// String names the kind as the text format does.
func (k ExternKind) String() string {
	switch k {
	case ExternFunc:
		return "function"
	case ExternTable:
		return "table"
	case ExternMemory:
		return "memory"
	case ExternGlobal:
		return "global"
	case ExternTag:
		return "tag"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

// Import is one entry of a module's import section.
type Import struct {
	Module, Name string
	Kind         ExternKind
}

// Export is one entry of a module's export section: the kind's item of
// that index.
type Export struct {
	Name  string
	Kind  ExternKind
	Index uint32
}

// FuncType is a function type: its parameter and result value types,
// each the type's first byte in the binary (0x7f i32, 0x7e i64, …).
type FuncType struct{ Params, Results []byte }

// Equal reports whether f and g are the same type.
func (f FuncType) Equal(g FuncType) bool {
	return bytes.Equal(f.Params, g.Params) && bytes.Equal(f.Results, g.Results)
}

// String prints f as "(i32, i32) -> (i64)".
func (f FuncType) String() string {
	return "(" + strings.Join(ValueTypeNames(f.Params), ", ") + ") -> (" + strings.Join(ValueTypeNames(f.Results), ", ") + ")"
}

// ValueTypeNames names value types as the text format does ("i32",
// "funcref", …; "0x63" for one it has no name for).
func ValueTypeNames(ts []byte) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = valueTypeName(t)
	}
	return out
}

func valueTypeName(t byte) string {
	switch t {
	case 0x7f:
		return "i32"
	case 0x7e:
		return "i64"
	case 0x7d:
		return "f32"
	case 0x7c:
		return "f64"
	case 0x7b:
		return "v128"
	case 0x70:
		return "funcref"
	case 0x6f:
		return "externref"
	}
	return fmt.Sprintf("0x%02x", t)
}

// FuncType returns the type of function fn (imported functions first, as
// the binary numbers them). The scan checks no index: an index past the
// functions or types is an error here.
func (m *Module) FuncType(fn uint32) (FuncType, error) {
	if int(fn) >= len(m.funcTypes) {
		return FuncType{}, fmt.Errorf("function index %d out of range: the module has %d functions", fn, len(m.funcTypes))
	}
	t := m.funcTypes[fn]
	if int(t) >= len(m.types) {
		return FuncType{}, fmt.Errorf("function %d has type index %d out of range: the module has %d types", fn, t, len(m.types))
	}
	return m.typeAt(t), nil
}

// typeAt decodes type i again from the binary: 4 bytes a type kept while
// scanning, not a decoded copy of every one.
func (m *Module) typeAt(i uint32) FuncType {
	r := &reader{buf: m.wasm, pos: int(m.types[i])}
	sig, _ := r.funcType(true) // scanned once already
	return sig
}

// CompileWork is the estimate of the steps wazero's optimizing compiler
// takes on all function bodies beyond their size (see flowModel); Scan
// refuses a module whose estimate is over its limit.
func (m *Module) CompileWork() int64 { return m.work }

// QuoteName prints a name read from a module as is when it is plain, else
// quoted (and cut at 200 bytes), so that control characters in a hostile
// module cannot forge log lines.
func QuoteName(s string) string {
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
