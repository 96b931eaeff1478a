package wasmtest

import (
	"fmt"

	"github.com/udfhost/udfhost/internal/wasmenc"
)

// Shape is a family of modules that cost wazero's optimizing compiler
// more the larger n: the compile bombs the scan refuses (wasmscan's
// TestCompileBombs builds them past its limits) and the worst cases it
// lets through (the cost model builds them right at its limits).
type Shape struct {
	Name  string
	What  string // what n counts
	Build func(n int) []byte
}

// Instructions the shapes repeat.
var (
	getBrIf = []byte{0x20, 0x00, 0x0d, 0x00}                         // local.get 0 br_if 0
	diamond = []byte{0x20, 0x00, 0x04, 0x40, 0x01, 0x05, 0x01, 0x0b} // local.get 0 if nop else nop end
)

// Shapes returns every shape, the control-flow ones first.
func Shapes() []Shape {
	return []Shape{
		{"nested blocks", "blocks, each in the one before", func(n int) []byte { return OneFunc(0, NestedBlocks(n)) }},
		{"nested loops", "loops, each in the one before", func(n int) []byte {
			return OneFunc(0, wasmenc.Cat(wasmenc.Rep(n, 0x03, 0x40), wasmenc.Rep(n, wasmenc.OpEnd)))
		}},
		{"blocks in a row", "blocks", func(n int) []byte { return OneFunc(0, wasmenc.Rep(n, 0x02, 0x40, wasmenc.OpEnd)) }},
		{"ifs in a row", "ifs", func(n int) []byte { return OneFunc(0, wasmenc.Rep(n, 0x20, 0x00, 0x04, 0x40, wasmenc.OpEnd)) }},
		{"br_ifs in a row", "br_ifs", func(n int) []byte { return OneFunc(0, wasmenc.Rep(n, getBrIf...)) }},
		{"br_table to one label", "labels", func(n int) []byte {
			return OneFunc(0, wasmenc.Cat([]byte{0x02, 0x40, 0x20, 0x00, 0x0e}, wasmenc.ULEB128(uint32(n)), wasmenc.Rep(n, 0x00), []byte{0x00, wasmenc.OpEnd}))
		}},
		{"locals read after a join", "locals read after a join of 2n edges", func(n int) []byte {
			return OneFunc(uint32(n), wasmenc.Cat([]byte{0x02, 0x40}, wasmenc.Rep(2*n, getBrIf...), []byte{wasmenc.OpEnd}, ReadLocals(n)))
		}},
		{"locals read after diamonds", "locals read after 20 if/else", func(n int) []byte {
			return OneFunc(uint32(n), wasmenc.Cat(wasmenc.Rep(20, diamond...), ReadLocals(n)))
		}},
		{"nested loops reading locals", "nested loops reading as many locals", func(n int) []byte {
			return OneFunc(uint32(n), wasmenc.Cat(wasmenc.Rep(n, 0x03, 0x40), ReadLocals(n), wasmenc.Rep(n, append(getBrIf, wasmenc.OpEnd)...)))
		}},
		{"dispatch", "nested blocks a br_table in a loop jumps to (Go's shape)", func(n int) []byte {
			labels := make([][]byte, n)
			for i := range labels {
				labels[i] = wasmenc.ULEB128(uint32(i))
			}
			return OneFunc(1, wasmenc.Cat([]byte{0x03, 0x40}, wasmenc.Rep(n, 0x02, 0x40), []byte{0x20, 0x00, 0x0e}, wasmenc.ULEB128(uint32(n)), wasmenc.Cat(labels...), wasmenc.ULEB128(uint32(n)),
				[]byte{wasmenc.OpEnd}, wasmenc.Rep(n-1, 0x20, 0x00, 0x21, 0x01, wasmenc.OpEnd), []byte{wasmenc.OpEnd}))
		}},
		{"straight line", "i32.adds in one expression", func(n int) []byte {
			return OneFunc(1, wasmenc.Cat([]byte{0x20, 0x00}, wasmenc.Rep(n, 0x20, 0x00, 0x6a), []byte{0x21, 0x01}))
		}},
		{"many costly functions", "functions of 7,000 nested blocks", func(n int) []byte {
			return Functions(n, 1, wasmenc.Body(nil, NestedBlocks(7000), []byte{wasmenc.OpEnd}))
		}},
		{"costly functions filling an artifact", "functions of 190 nested blocks (63 work a byte)", func(n int) []byte {
			return Functions(n, 1, wasmenc.Body(nil, NestedBlocks(190), []byte{wasmenc.OpEnd}))
		}},
		{"code filling an artifact", "functions of 1 MB of i32.adds", func(n int) []byte {
			return Functions(n, 1, wasmenc.Body([]wasmenc.Local{{N: 1, Type: wasmenc.I32}},
				[]byte{0x20, 0x00}, wasmenc.Rep(333_333, 0x20, 0x00, 0x6a), []byte{0x21, 0x00, wasmenc.OpEnd}))
		}},
		{"many functions", "empty functions", func(n int) []byte { return Functions(n, 1, Body()) }},
		{"functions × exports", "empty functions, each exported", func(n int) []byte { return Functions(n, n, Body()) }},
		{"many types", "function types", func(n int) []byte {
			return wasmenc.Module(
				wasmenc.Section(wasmenc.SecType, wasmenc.ULEB128(uint32(n)), wasmenc.Rep(n, 0x60, 0x00, 0x00)),
				Funcs(0), Exports(ExportFunc("f", 0)), Code(Body()))
		}},
		{"locals", "locals of one function, the last one read", func(n int) []byte {
			return OneFunc(uint32(n), wasmenc.Cat([]byte{0x20}, wasmenc.ULEB128(uint32(n)), []byte{0x1a}))
		}},
		{"locals in all functions", "functions of 40,000 locals", func(n int) []byte {
			return Functions(n, 1, wasmenc.Body([]wasmenc.Local{{N: 40_000, Type: wasmenc.I32}}, []byte{wasmenc.OpEnd}))
		}},
		{"table elements", "elements of one table", func(n int) []byte {
			return withOneFunc(wasmenc.Section(wasmenc.SecTable, wasmenc.Vec(wasmenc.Cat([]byte{wasmenc.FuncRef, 0x00}, wasmenc.ULEB128(uint32(n))))))
		}},
		{"element segment", "elements of a passive segment", func(n int) []byte {
			return withOneFunc(nil, wasmenc.Section(wasmenc.SecElement, wasmenc.Vec(wasmenc.Cat([]byte{0x01, 0x00}, wasmenc.ULEB128(uint32(n)), make([]byte, n)))))
		}},
		{"globals", "i32 globals", func(n int) []byte {
			return withOneFunc(wasmenc.Section(wasmenc.SecGlobal, wasmenc.ULEB128(uint32(n)), wasmenc.Rep(n, wasmenc.I32, 0x00, 0x41, 0x00, wasmenc.OpEnd)))
		}},
	}
}

// ShapeNamed returns the shape of that name.
func ShapeNamed(name string) Shape {
	for _, s := range Shapes() {
		if s.Name == name {
			return s
		}
	}
	panic(fmt.Sprintf("no shape %q", name))
}

// Functions is a module of n functions of type () -> (), each with body
// (a code-section entry), the first exported of them exported as f0, f1, ….
func Functions(n, exported int, body []byte) []byte {
	exports := make([][]byte, exported)
	for i := range exports {
		exports[i] = ExportFunc(fmt.Sprintf("f%d", i), uint32(i))
	}
	return wasmenc.Module(
		Types(wasmenc.FuncType(nil, nil)),
		wasmenc.Section(wasmenc.SecFunction, wasmenc.ULEB128(uint32(n)), wasmenc.Rep(n, 0x00)),
		Exports(exports...),
		wasmenc.Section(wasmenc.SecCode, wasmenc.ULEB128(uint32(n)), wasmenc.Rep(n, body...)),
	)
}

// withOneFunc is a module of function f of type () -> () with an empty
// body and, before its export, the section before (after it, after).
func withOneFunc(before []byte, after ...[]byte) []byte {
	return wasmenc.Module(Types(wasmenc.FuncType(nil, nil)), Funcs(0), before, Exports(ExportFunc("f", 0)), wasmenc.Cat(after...), Code(Body()))
}
