package wasmscan

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/internal/wasmenc"
)

// compileBombs are small modules that would each keep wazero's optimizing
// compiler busy for seconds to minutes (timings on the 2-core test VM,
// without the limits).
func compileBombs() map[string][]byte {
	shape := func(name string, n int) []byte { return wasmtest.ShapeNamed(name).Build(n) }
	return map[string][]byte{
		// test/hostile nested_blocks: 90 KB, 4.5 s.
		"nested blocks": shape("nested blocks", 30_000),
		// 600 KB, 4 min 39 s.
		"nested blocks 600 KB": shape("nested blocks", 200_000),
		// Under the nesting limit: 27 KB, ~3 s.
		"nested loops 9,000": shape("nested loops", 9_000),
		// Not nested at all: 60 KB, 1.7 s; 100 KB, 17 s.
		"blocks in a row": shape("blocks in a row", 20_000),
		"ifs in a row":    shape("ifs in a row", 20_000),
		"br_ifs in a row": shape("br_ifs in a row", 20_000),
		// One block with 500,000 predecessors: 500 KB, 85 s.
		"br_table to one label": shape("br_table to one label", 500_000),
		// 2,000 edges into a join, 1,000 locals read after it: 12 KB, 7.7 s.
		"locals read after a join": shape("locals read after a join", 1000),
		// 10,000 locals read after 20 if/else: 40 KB, 1.4 s.
		"locals read after diamonds": shape("locals read after diamonds", 10_000),
		// 400 nested loops reading 400 locals: 4 KB, 10 s.
		"nested loops reading locals": shape("nested loops reading locals", 400),
		// 9 functions under the per-function limit, over the module's.
		"many costly functions": shape("many costly functions", 9),
	}
}

// TestCompileBombs: modules whose compilation cost grows faster than their
// size are refused by the pre-scan, at once, saying why.
func TestCompileBombs(t *testing.T) {
	for name, m := range compileBombs() {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Scan(m)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
			if err == nil {
				t.Fatal("scanned")
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
	dispatch := wasmenc.Cat([]byte{0x03, 0x40}, wasmenc.Rep(n, 0x02, 0x40), []byte{0x20, 0x00, 0x0e}, wasmenc.ULEB128(n), labels(n), wasmenc.ULEB128(n),
		[]byte{0x0b}, wasmenc.Rep(n-1, 0x20, 0x00, 0x21, 0x01, 0x0b), []byte{0x0b})
	cases := map[string][]byte{
		"dispatch":       wasmtest.OneFunc(1, dispatch),
		"straight line":  wasmtest.OneFunc(1, wasmenc.Rep(100_000, 0x20, 0x00, 0x21, 0x01)),
		"ifs nested 500": wasmtest.OneFunc(0, wasmenc.Cat(wasmenc.Rep(500, 0x20, 0x00, 0x04, 0x40), wasmenc.Rep(500, 0x0b))),
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			scanAndCompile(t, m)
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
		out = wasmenc.Cat(out, wasmenc.ULEB128(uint32(i)))
	}
	return out
}

// TestFlowModel checks the distances the model finds.
func TestFlowModel(t *testing.T) {
	walk := func(t *testing.T, instrs []byte) bodyStats {
		t.Helper()
		r := &reader{buf: wasmenc.Cat(instrs, []byte{0x0b})}
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
		{"nested blocks", wasmtest.NestedBlocks(100), 100, 100, 0, 100},
		{"blocks in a row", wasmenc.Rep(100, 0x02, 0x40, 0x0b), 100, 1, 0, 100},
		// then and else below the if, what follows below either.
		{"if", []byte{0x20, 0x00, 0x04, 0x40, 0x0b}, 2, 1, 1, 3},
		{"if else", []byte{0x20, 0x00, 0x04, 0x40, 0x05, 0x0b}, 2, 1, 1, 3},
		// A br_if from the entry makes what follows the block near.
		{"br_if out", wasmenc.Cat([]byte{0x02, 0x40, 0x20, 0x00, 0x0d, 0x00}, wasmenc.Rep(50, 0x02, 0x40, 0x0b), []byte{0x0b}), 51, 2, 1, 52},
		// Dispatch: every block after an end is a trampoline away.
		{"br_table", wasmenc.Cat(wasmenc.Rep(50, 0x02, 0x40), []byte{0x20, 0x00, 0x0e, 50}, labels(50), []byte{0x00}, wasmenc.Rep(50, 0x0b)), 2, 50, 1, 101},
		// br 1 is unreachable: the outer block's end is reached only
		// through the chain, so what follows it stays far.
		{"unreachable branch", wasmenc.Cat([]byte{0x02, 0x40, 0x02, 0x40, 0x0c, 0x00, 0x0c, 0x01, 0x0b}, wasmenc.Rep(20, 0x02, 0x40, 0x0b), []byte{0x0b, 0x02, 0x40, 0x0b}), 23, 2, 0, 23},
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
	if a, b := walk(t, wasmtest.NestedBlocks(1000)).work(), walk(t, wasmtest.NestedBlocks(2000)).work(); b < 3*a {
		t.Errorf("nested blocks: work %d for 1000, %d for 2000", a, b)
	}
	for _, bad := range [][]byte{{0x05}, {0x0c, 0x01}, {0x06}, {0xfd, 0x9a}, {0xfc, 0x12}, {0xfe, 0x04}, {0x02}} {
		r := &reader{buf: wasmenc.Cat(bad, []byte{0x0b})}
		if _, err := r.instrs(); err == nil {
			t.Errorf("% x: walked", bad)
		}
	}
}

// TestInstrImmediates: the walk reads every kind of immediate as wazero
// does, so modules wazero accepts pass whole.
func TestInstrImmediates(t *testing.T) {
	for name, instrs := range wasmtest.InstrCases() {
		t.Run(name, func(t *testing.T) {
			scanAndCompile(t, wasmtest.Opcodes(instrs, false))
		})
	}
}

// FuzzInstrs checks the walk against wazero's validator on arbitrary
// function bodies, with wazero's experimental features on too: whatever
// wazero accepts, the scan must accept (a walk that lost its place would
// refuse it, or worse, misjudge what follows).
func FuzzInstrs(f *testing.F) {
	for _, instrs := range wasmtest.InstrCases() {
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
		m := wasmtest.Opcodes(instrs, true)
		if !wazeroAccepts(ctx, cfg, m) {
			return
		}
		if _, err := Scan(m); err != nil {
			t.Fatalf("wazero accepts % x; the scan: %v", instrs, err)
		}
	})
}

// TestPerInstanceLimits: what every instance would allocate outside the
// linear-memory limit is bounded at upload.
func TestPerInstanceLimits(t *testing.T) {
	withTables := func(tables []byte, instrs ...byte) []byte {
		code := wasmenc.Cat([]byte{0x00}, instrs, []byte{0x0b})
		return wasmenc.Module(
			wasmtest.Types(wasmenc.FuncType(nil, nil)),
			wasmtest.Funcs(0),
			wasmenc.Section(wasmenc.SecTable, tables),
			wasmtest.Exports(wasmtest.ExportFunc("f", 0)),
			wasmtest.Code(wasmenc.Cat(wasmenc.ULEB128(uint32(len(code))), code)),
		)
	}
	tableGrow := []byte{0xd0, 0x70, 0x41, 0x01, 0xfc, 0x0f, 0x00, 0x1a}
	elems := wasmtest.ShapeNamed("element segment").Build
	globals := wasmtest.ShapeNamed("globals").Build
	bad := map[string]struct {
		module []byte
		msg    string
	}{
		// test/hostile huge_table: 800 MB per instance.
		"huge table":      {withTables(wasmenc.Vec(wasmenc.Cat([]byte{0x70, 0x00}, wasmenc.ULEB128(100_000_000)))), "table 0: initial size 100000000 elements"},
		"tables add up":   {withTables(wasmenc.Vec(wasmenc.Cat([]byte{0x70, 0x00}, wasmenc.ULEB128(maxTableElements)), []byte{0x70, 0x00, 0x01})), "table 1:"},
		"grown, no max":   {withTables(wasmenc.Vec([]byte{0x70, 0x00, 0x01}), tableGrow...), "declares no maximum"},
		"grown, huge max": {withTables(wasmenc.Vec(wasmenc.Cat([]byte{0x70, 0x01, 0x01}, wasmenc.ULEB128(0xffffffff))), tableGrow...), "maximum of 4294967295"},
		"elements":        {elems(maxElements + 1), "elements"},
		"globals":         {globals(maxGlobals + 1), "globals"},
		"tables":          {withTables(wasmenc.Cat(wasmenc.ULEB128(maxTables+1), wasmenc.Rep(maxTables+1, 0x70, 0x00, 0x00))), "tables"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			wantRefused(t, tc.module, tc.msg)
		})
	}
	good := map[string][]byte{
		"Go-sized table":      withTables(wasmenc.Vec(wasmenc.Cat([]byte{0x70, 0x00}, wasmenc.ULEB128(6000)))),
		"table at the limit":  withTables(wasmenc.Vec(wasmenc.Cat([]byte{0x70, 0x00}, wasmenc.ULEB128(maxTableElements)))),
		"ungrown, huge max":   withTables(wasmenc.Vec(wasmenc.Cat([]byte{0x70, 0x01, 0x01}, wasmenc.ULEB128(0xffffffff)))),
		"grown within limits": withTables(wasmenc.Vec([]byte{0x70, 0x01, 0x01, 0x80, 0x01}), tableGrow...),
		"elements":            elems(10_000),
	}
	for name, m := range good {
		t.Run(name, func(t *testing.T) { scanAndCompile(t, m) })
	}
}

// BenchmarkScanGoGuest measures the pre-scan on a 2.5 MB Go guest (built by
// make examples); compare with artifacts' BenchmarkValidateGoGuest.
func BenchmarkScanGoGuest(b *testing.B) {
	wasm := wasmtest.GoGuest(b)
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := Scan(wasm); err != nil {
			b.Fatal(err)
		}
	}
}
