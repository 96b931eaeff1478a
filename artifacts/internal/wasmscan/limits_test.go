package wasmscan

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// compileBombs are small modules that would each keep wazero's optimizing
// compiler busy for seconds to minutes (timings on the 2-core test VM,
// without the limits).
func compileBombs() map[string][]byte {
	diamond := []byte{0x20, 0x00, 0x04, 0x40, 0x01, 0x05, 0x01, 0x0b} // local.get 0 if nop else nop end
	return map[string][]byte{
		// test/hostile nested_blocks: 90 KB, 4.5 s.
		"nested blocks": codeModule(0, nestedBlocks(30_000)),
		// 600 KB, 4 min 39 s.
		"nested blocks 600 KB": codeModule(0, nestedBlocks(200_000)),
		// Under the nesting limit: 27 KB, ~3 s.
		"nested loops 9,000": codeModule(0, cat(rep(9_000, 0x03, 0x40), rep(9_000, 0x0b))),
		// Not nested at all: 60 KB, 1.7 s; 100 KB, 17 s.
		"blocks in a row": codeModule(0, rep(20_000, 0x02, 0x40, 0x0b)),
		"ifs in a row":    codeModule(0, rep(20_000, 0x20, 0x00, 0x04, 0x40, 0x0b)),
		"br_ifs in a row": codeModule(0, rep(20_000, 0x20, 0x00, 0x0d, 0x00)),
		// One block with 500,000 predecessors: 500 KB, 85 s.
		"br_table to one label": codeModule(0, cat([]byte{0x02, 0x40, 0x20, 0x00, 0x0e}, leb(500_000), rep(500_000, 0x00), []byte{0x00, 0x0b})),
		// 2,000 edges into a join, 1,000 locals read after it: 12 KB, 7.7 s.
		"locals read after a join": codeModule(1000, cat([]byte{0x02, 0x40}, rep(2000, 0x20, 0x00, 0x0d, 0x00), []byte{0x0b}, readLocals(1000))),
		// 10,000 locals read after 20 if/else: 40 KB, 1.4 s.
		"locals read after diamonds": codeModule(10_000, cat(rep(20, diamond...), readLocals(10_000))),
		// 400 nested loops reading 400 locals: 4 KB, 10 s.
		"nested loops reading locals": codeModule(400, cat(rep(400, 0x03, 0x40), readLocals(400), rep(400, 0x20, 0x00, 0x0d, 0x00, 0x0b))),
		// 9 functions under the per-function limit, over the module's.
		"many costly functions": func() []byte {
			body := cat([]byte{0x00}, nestedBlocks(7000), []byte{0x0b})
			code := cat(leb(uint32(len(body))), body)
			return wasmModule(
				section(1, vec(funcType(nil, nil))),
				section(3, leb(9), rep(9, 0x00)),
				section(7, vec(exportFunc("f", 0))),
				section(10, leb(9), rep(9, code...)),
			)
		}(),
	}
}

// TestCompileBombs: modules whose compilation cost grows faster than their
// size are refused by the pre-scan, at once, saying why.
func TestCompileBombs(t *testing.T) {
	for name, m := range compileBombs() {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Validate(context.Background(), m, KindUDF, nil, nil)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
			if !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("err = %v, want ErrInvalidModule", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "too costly to compile") && !strings.Contains(msg, "nest more than") {
				t.Errorf("err = %v, want it to name the control flow", err)
			}
		})
	}
}

// TestCompileCostAccepts: toolchain-shaped code with deep nesting and many
// blocks passes, and compiles quickly.
func TestCompileCostAccepts(t *testing.T) {
	const n = 5000
	// Go's shape: loop, n nested blocks, a br_table dispatching to all of
	// them, code after each end.
	dispatch := cat([]byte{0x03, 0x40}, rep(n, 0x02, 0x40), []byte{0x20, 0x00, 0x0e}, leb(n), labels(n), leb(n),
		[]byte{0x0b}, rep(n-1, 0x20, 0x00, 0x21, 0x01, 0x0b), []byte{0x0b})
	cases := map[string][]byte{
		"dispatch":       codeModule(1, dispatch),
		"straight line":  codeModule(1, rep(100_000, 0x20, 0x00, 0x21, 0x01)),
		"ifs nested 500": codeModule(0, cat(rep(500, 0x20, 0x00, 0x04, 0x40), rep(500, 0x0b))),
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			if _, err := Validate(context.Background(), m, KindUDF, nil, nil); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

// wazeroAccepts reports whether wazero compiles m. Its validator panics on
// some truncated bodies with experimental features on (testdata/fuzz/
// FuzzInstrs: a try_table cut short); that is a refusal too.
func wazeroAccepts(ctx context.Context, cfg wazero.RuntimeConfig, m []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	defer rt.Close(ctx)
	_, err := rt.CompileModule(ctx, m)
	return err == nil
}

// labels is the br_table labels 0 to n-1.
func labels(n int) []byte {
	var out []byte
	for i := range n {
		out = cat(out, leb(uint32(i)))
	}
	return out
}

// TestFlowModel checks the distances the model finds.
func TestFlowModel(t *testing.T) {
	walk := func(t *testing.T, instrs []byte) bodyStats {
		t.Helper()
		r := &reader{buf: cat(instrs, []byte{0x0b})}
		st, err := r.instrs()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	cases := []struct {
		name                   string
		instrs                 []byte
		maxDist, depth, locals int
		blocks                 int
	}{
		{"straight line", []byte{0x20, 0x07, 0x1a, 0x01}, 0, 0, 8, 0},
		{"nested blocks", nestedBlocks(100), 100, 100, 0, 100},
		{"blocks in a row", rep(100, 0x02, 0x40, 0x0b), 100, 1, 0, 100},
		// then and else below the if, what follows below either.
		{"if", []byte{0x20, 0x00, 0x04, 0x40, 0x0b}, 2, 1, 1, 3},
		{"if else", []byte{0x20, 0x00, 0x04, 0x40, 0x05, 0x0b}, 2, 1, 1, 3},
		// A br_if from the entry makes what follows the block near.
		{"br_if out", cat([]byte{0x02, 0x40, 0x20, 0x00, 0x0d, 0x00}, rep(50, 0x02, 0x40, 0x0b), []byte{0x0b}), 51, 2, 1, 52},
		// Dispatch: every block after an end is a trampoline away.
		{"br_table", cat(rep(50, 0x02, 0x40), []byte{0x20, 0x00, 0x0e, 50}, labels(50), []byte{0x00}, rep(50, 0x0b)), 2, 50, 1, 101},
		// br 1 is unreachable: the outer block's end is reached only
		// through the chain, so what follows it stays far.
		{"unreachable branch", cat([]byte{0x02, 0x40, 0x02, 0x40, 0x0c, 0x00, 0x0c, 0x01, 0x0b}, rep(20, 0x02, 0x40, 0x0b), []byte{0x0b, 0x02, 0x40, 0x0b}), 23, 2, 0, 23},
		// Code after an unconditional branch adds no blocks.
		{"dead code", []byte{0x0c, 0x00, 0x02, 0x40, 0x20, 0x00, 0x04, 0x40, 0x0b, 0x0b}, 0, 2, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := walk(t, tc.instrs)
			if st.maxDist != tc.maxDist || st.depth != tc.depth || st.locals != tc.locals || st.blocks != tc.blocks {
				t.Errorf("maxDist %d depth %d locals %d blocks %d; want %d %d %d %d", st.maxDist, st.depth, st.locals, st.blocks, tc.maxDist, tc.depth, tc.locals, tc.blocks)
			}
		})
	}
	// Work grows with the square of a chain, and stays linear for dispatch.
	if a, b := walk(t, nestedBlocks(1000)).work(), walk(t, nestedBlocks(2000)).work(); b < 3*a {
		t.Errorf("nested blocks: work %d for 1000, %d for 2000", a, b)
	}
	for _, bad := range [][]byte{{0x05}, {0x0c, 0x01}, {0x06}, {0xfd, 0x9a}, {0xfc, 0x12}, {0xfe, 0x04}, {0x02}} {
		r := &reader{buf: cat(bad, []byte{0x0b})}
		if _, err := r.instrs(); err == nil {
			t.Errorf("% x: walked", bad)
		}
	}
}

// opcodeModule has a memory, a growable table, a mutable global, a passive
// data and element segment and function f (param i32) with instrs; for
// the experimental features, the memory is shared and there is a tag.
func opcodeModule(instrs []byte, experimental bool) []byte {
	code := cat([]byte{0x00}, instrs, []byte{0x0b})
	memory, tags := section(5, vec([]byte{0x00, 0x01})), []byte(nil)
	if experimental {
		memory = section(5, vec([]byte{0x03, 0x01, 0x01}))
		tags = section(13, vec([]byte{0x00, 0x01})) // a tag of type () -> ()
	}
	return wasmModule(
		section(1, vec(funcType([]byte{tI32}, nil), funcType(nil, nil))),
		section(3, vec(leb(0))),
		section(4, vec([]byte{0x70, 0x01, 0x01, 0x0a})), // funcref, min 1, max 10
		memory,
		tags,
		section(6, vec([]byte{tI32, 0x01, 0x41, 0x00, 0x0b})),
		section(7, vec(exportFunc("f", 0))),
		section(9, vec([]byte{0x01, 0x00, 0x01, 0x00})), // passive, funcref, [f]
		section(12, leb(1)),
		section(10, vec(cat(leb(uint32(len(code))), code))),
		section(11, vec(cat([]byte{0x01}, str("ab")))),
	)
}

// instrCases are valid instruction sequences with every kind of immediate
// wazero's default features have.
func instrCases() map[string][]byte {
	v128 := cat([]byte{0xfd, 0x0c}, make([]byte, 16))
	return map[string][]byte{
		"load store":         {0x41, 0x00, 0x28, 0x02, 0x00, 0x1a, 0x41, 0x00, 0x41, 0x01, 0x36, 0x02, 0x80, 0x01},
		"memory size grow":   {0x3f, 0x00, 0x1a, 0x41, 0x00, 0x40, 0x00, 0x1a},
		"consts":             cat([]byte{0x42}, rep(9, 0x80), []byte{0x7f, 0x1a, 0x43, 0, 0, 0x80, 0x3f, 0x1a, 0x44}, make([]byte, 8), []byte{0x1a}),
		"locals globals":     {0x20, 0x00, 0x21, 0x00, 0x20, 0x00, 0x22, 0x00, 0x1a, 0x23, 0x00, 0x24, 0x00},
		"br_table":           {0x02, 0x40, 0x20, 0x00, 0x0e, 0x02, 0x00, 0x00, 0x00, 0x0b},
		"calls":              {0x41, 0x00, 0x10, 0x00, 0x41, 0x00, 0x41, 0x00, 0x11, 0x00, 0x00},
		"selects":            {0x41, 0x01, 0x41, 0x02, 0x41, 0x00, 0x1b, 0x1a, 0x41, 0x01, 0x41, 0x02, 0x41, 0x00, 0x1c, 0x01, tI32, 0x1a},
		"refs":               {0xd0, 0x70, 0xd1, 0x1a, 0xd2, 0x00, 0x1a},
		"table get set":      {0x41, 0x00, 0x25, 0x00, 0x1a, 0x41, 0x00, 0xd0, 0x70, 0x26, 0x00},
		"saturating":         {0x43, 0, 0, 0, 0, 0xfc, 0x00, 0x1a},
		"memory bulk":        {0x41, 0x00, 0x41, 0x00, 0x41, 0x01, 0xfc, 0x08, 0x00, 0x00, 0xfc, 0x09, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x01, 0xfc, 0x0a, 0x00, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x01, 0xfc, 0x0b, 0x00},
		"table bulk":         {0x41, 0x00, 0x41, 0x00, 0x41, 0x01, 0xfc, 0x0c, 0x00, 0x00, 0xfc, 0x0d, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0e, 0x00, 0x00, 0xd0, 0x70, 0x41, 0x01, 0xfc, 0x0f, 0x00, 0x1a, 0xfc, 0x10, 0x00, 0x1a, 0x41, 0x00, 0xd0, 0x70, 0x41, 0x00, 0xfc, 0x11, 0x00},
		"v128 const shuffle": cat(v128, v128, []byte{0xfd, 0x0d}, make([]byte, 16), []byte{0x1a}),
		"v128 lanes":         cat(v128, []byte{0xfd, 0x15, 0x00, 0x1a, 0x41, 0x00}, v128, []byte{0xfd, 0x54, 0x00, 0x00, 0x00, 0x1a}),
		"v128 load":          {0x41, 0x00, 0xfd, 0x00, 0x04, 0x00, 0x1a},
		// As toolchains encode i16x8.abs (LEB128 0x80 0x01): wazero reads
		// 0x80, then 0x01 as a nop; so does the walk.
		"v128 two-byte opcode": cat(v128, []byte{0xfd, 0x80, 0x01, 0xfd, 0x4d, 0x1a}),
		"block types":          {0x02, tI32, 0x41, 0x00, 0x0b, 0x1a, 0x02, 0x01, 0x0b, 0x02, 0x40, 0x0f, 0x0b},
		"loop if else":         {0x03, 0x40, 0x20, 0x00, 0x0d, 0x00, 0x0b, 0x20, 0x00, 0x04, 0x40, 0x00, 0x05, 0x01, 0x0b},
	}
}

// TestInstrImmediates: the walk reads every kind of immediate as wazero
// does, so modules wazero accepts pass whole.
func TestInstrImmediates(t *testing.T) {
	for name, instrs := range instrCases() {
		t.Run(name, func(t *testing.T) {
			if _, err := Validate(context.Background(), opcodeModule(instrs, false), KindUDF, nil, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzInstrs checks the walk against wazero's validator on arbitrary
// function bodies, with wazero's experimental features on too: whatever
// wazero accepts, the scan must accept (a walk that lost its place would
// refuse it, or worse, misjudge what follows).
func FuzzInstrs(f *testing.F) {
	for _, instrs := range instrCases() {
		f.Add(instrs)
	}
	for _, instrs := range [][]byte{
		{0x41, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x1a, 0xfe, 0x03, 0x00}, // i32.atomic.load, atomic.fence
		{0x41, 0x00, 0x12, 0x00},                                     // return_call
		{0x1f, 0x40, 0x01, 0x02, 0x00, 0x08, 0x00, 0x0b},             // try_table (catch_all 0) throw 0 end
	} {
		f.Add(instrs)
	}
	ctx := context.Background()
	cfg := wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesThreads |
		experimental.CoreFeaturesTailCall | experimental.CoreFeaturesExtendedConst | experimental.CoreFeaturesExceptionHandling)
	f.Fuzz(func(t *testing.T, instrs []byte) {
		if len(instrs) > 4096 {
			t.Skip("long bodies add nothing the walk has not seen")
		}
		m := opcodeModule(instrs, true)
		if !wazeroAccepts(ctx, cfg, m) {
			return
		}
		if _, err := scanModule(m); err != nil {
			t.Fatalf("wazero accepts % x; the scan: %v", instrs, err)
		}
	})
}

// TestPerInstanceLimits: what every instance would allocate outside the
// linear-memory limit is bounded at upload.
func TestPerInstanceLimits(t *testing.T) {
	withTables := func(tables []byte, instrs ...byte) []byte {
		code := cat([]byte{0x00}, instrs, []byte{0x0b})
		return wasmModule(
			section(1, vec(funcType(nil, nil))),
			section(3, vec(leb(0))),
			section(4, tables),
			section(7, vec(exportFunc("f", 0))),
			section(10, vec(cat(leb(uint32(len(code))), code))),
		)
	}
	tableGrow := []byte{0xd0, 0x70, 0x41, 0x01, 0xfc, 0x0f, 0x00, 0x1a}
	elems := func(n uint32) []byte {
		return wasmModule(
			section(1, vec(funcType(nil, nil))),
			section(3, vec(leb(0))),
			section(7, vec(exportFunc("f", 0))),
			section(9, vec(cat([]byte{0x01, 0x00}, leb(n), make([]byte, n)))),
			section(10, vec(body())),
		)
	}
	globals := func(n int) []byte {
		return wasmModule(
			section(1, vec(funcType(nil, nil))),
			section(3, vec(leb(0))),
			section(6, cat(leb(uint32(n)), rep(n, tI32, 0x00, 0x41, 0x00, 0x0b))),
			section(7, vec(exportFunc("f", 0))),
			section(10, vec(body())),
		)
	}
	bad := map[string]struct {
		module []byte
		msg    string
	}{
		// test/hostile huge_table: 800 MB per instance.
		"huge table":      {withTables(vec(cat([]byte{0x70, 0x00}, leb(100_000_000)))), "table 0: initial size 100000000 elements"},
		"tables add up":   {withTables(vec(cat([]byte{0x70, 0x00}, leb(maxTableElements)), []byte{0x70, 0x00, 0x01})), "table 1:"},
		"grown, no max":   {withTables(vec([]byte{0x70, 0x00, 0x01}), tableGrow...), "declares no maximum"},
		"grown, huge max": {withTables(vec(cat([]byte{0x70, 0x01, 0x01}, leb(0xffffffff))), tableGrow...), "maximum of 4294967295"},
		"elements":        {elems(maxElements + 1), "elements"},
		"globals":         {globals(maxGlobals + 1), "globals"},
		"tables":          {withTables(cat(leb(maxTables+1), rep(maxTables+1, 0x70, 0x00, 0x00))), "tables"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := Validate(context.Background(), tc.module, KindUDF, nil, nil)
			wantErr(t, err, ErrInvalidModule, tc.msg)
		})
	}
	good := map[string][]byte{
		"Go-sized table":      withTables(vec(cat([]byte{0x70, 0x00}, leb(6000)))),
		"table at the limit":  withTables(vec(cat([]byte{0x70, 0x00}, leb(maxTableElements)))),
		"ungrown, huge max":   withTables(vec(cat([]byte{0x70, 0x01, 0x01}, leb(0xffffffff)))),
		"grown within limits": withTables(vec([]byte{0x70, 0x01, 0x01, 0x80, 0x01}), tableGrow...),
		"elements":            elems(10_000),
	}
	for name, m := range good {
		t.Run(name, func(t *testing.T) {
			if _, err := Validate(context.Background(), m, KindUDF, nil, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// BenchmarkScanGoGuest measures the pre-scan on a 2.5 MB Go guest (built by
// make examples); compare with BenchmarkValidateGoGuest.
func BenchmarkScanGoGuest(b *testing.B) {
	wasm := goGuest(b)
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := scanModule(wasm); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateGoGuest(b *testing.B) {
	wasm := goGuest(b)
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := Validate(context.Background(), wasm, KindUDF, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func goGuest(b *testing.B) []byte {
	wasm, err := os.ReadFile("../bin/examples/sha256hex.wasm")
	if err != nil {
		b.Skip("no Go guest built:", err)
	}
	return wasm
}
