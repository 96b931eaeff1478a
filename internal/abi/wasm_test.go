package abi

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/udfhost/udfhost/internal/udf"
)

// The guest packages built for the tests, relative to the module root.
var guestPackages = []string{"examples/go/upper", "examples/go/affine", "examples/go/sha256hex", "guest/internal/testudf"}

var (
	buildOnce    sync.Once
	buildErr     error
	wasmRuntime  wazero.Runtime
	wasmCompiled map[string]wazero.CompiledModule
)

// compiledGuest builds the guest packages with the go tool (once per test
// run, into the first caller's t.TempDir()), compiles them with wazero and
// returns the one named by pkg. It skips the test if go is not on PATH.
func compiledGuest(t *testing.T, pkg string) (wazero.Runtime, wazero.CompiledModule) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot build the wasm guests")
	}
	buildOnce.Do(func() { buildErr = buildGuests(goTool, t.TempDir()) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return wasmRuntime, wasmCompiled[pkg]
}

func buildGuests(goTool, dir string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	bins := make([][]byte, len(guestPackages))
	errs := make([]error, len(guestPackages))
	var wg sync.WaitGroup
	for i, pkg := range guestPackages {
		wg.Go(func() {
			out := filepath.Join(dir, filepath.Base(pkg)+".wasm")
			cmd := exec.Command(goTool, "build", "-buildmode=c-shared", "-o", out, "./"+pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			if msg, err := cmd.CombinedOutput(); err != nil {
				errs[i] = errors.New("building " + pkg + ": " + err.Error() + "\n" + string(msg))
				return
			}
			bins[i], errs[i] = os.ReadFile(out)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ctx := context.Background()
	wasmRuntime = wazero.NewRuntime(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, wasmRuntime)
	wasmCompiled = map[string]wazero.CompiledModule{}
	for i, pkg := range guestPackages {
		c, err := wasmRuntime.CompileModule(ctx, bins[i])
		if err != nil {
			return errors.New("compiling " + pkg + ": " + err.Error())
		}
		wasmCompiled[pkg] = c
	}
	return nil
}

// guestInstance is one instance of a guest module.
type guestInstance struct {
	t     *testing.T
	mod   api.Module
	alloc api.Function
	buf   []byte // reused input and output buffers
	out   []byte
}

func newGuest(t *testing.T, pkg string) *guestInstance {
	t.Helper()
	r, compiled := compiledGuest(t, pkg)
	ctx := context.Background()
	mod, err := r.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatalf("instantiating %s: %v", pkg, err)
	}
	t.Cleanup(func() { mod.Close(ctx) })
	g := &guestInstance{t: t, mod: mod, alloc: mod.ExportedFunction("udfhost_alloc")}
	v := mod.ExportedFunction("udfhost_abi_version")
	if v == nil || g.alloc == nil {
		t.Fatalf("%s lacks udfhost_abi_version or udfhost_alloc", pkg)
	}
	res, err := v.Call(ctx)
	if err != nil || uint32(res[0]) != Version {
		t.Fatalf("udfhost_abi_version = %v, %v; want %d", res, err, Version)
	}
	return g
}

// place copies region into a buffer from udfhost_alloc and returns its address.
func (g *guestInstance) place(region []byte) uint32 {
	g.t.Helper()
	res, err := g.alloc.Call(context.Background(), uint64(len(region)))
	if err != nil {
		g.t.Fatalf("udfhost_alloc(%d): %v", len(region), err)
	}
	ptr := uint32(res[0])
	if ptr == 0 || ptr%8 != 0 {
		g.t.Fatalf("udfhost_alloc(%d) = %#x, want a non-zero 8-aligned pointer", len(region), ptr)
	}
	if !g.mod.Memory().Write(ptr, region) {
		g.t.Fatalf("udfhost_alloc(%d) = %#x: not writable", len(region), ptr)
	}
	return ptr
}

// callRaw calls export with (ptr, n) and returns its packed result.
func (g *guestInstance) callRaw(export string, ptr, n uint32) uint64 {
	g.t.Helper()
	fn := g.mod.ExportedFunction(export)
	if fn == nil {
		g.t.Fatalf("no export %q", export)
	}
	res, err := fn.Call(context.Background(), uint64(ptr), uint64(n))
	if err != nil {
		g.t.Fatalf("%s: %v", export, err)
	}
	return res[0]
}

// call runs export on batch the way the worker and server will: encode,
// copy into guest memory, call, CopyOutput, DecodeOutput.
func (g *guestInstance) call(export string, b *Batch, argTypes []udf.Type, result udf.Type) (*Column, []*RowError, error) {
	g.t.Helper()
	if err := ValidateBatch(b, argTypes); err != nil {
		g.t.Fatalf("ValidateBatch: %v", err)
	}
	g.buf = AppendInput(g.buf[:0], b)
	ptr := g.place(g.buf)
	res := g.callRaw(export, ptr, uint32(len(g.buf)))
	mem, _ := g.mod.Memory().Read(0, g.mod.Memory().Size())
	var err error
	g.out, err = CopyOutput(g.out[:0], mem, uint32(res), uint32(res>>32), int(b.Rows), result)
	if err != nil {
		return nil, nil, err
	}
	col, errs, err := DecodeOutput(g.out, int(b.Rows), result)
	if err != nil {
		g.t.Fatalf("DecodeOutput of CopyOutput's region: %v", err)
	}
	return col, errs, nil
}

// varcharColumn builds a VARCHAR column; nil entries are NULL.
func varcharColumn(vals []*string) *Column {
	b := newColBuilder(udf.Varchar)
	for _, v := range vals {
		if v == nil {
			b.add(nil)
		} else {
			b.add(*v)
		}
	}
	return b.column()
}

func sp(s string) *string { return &s }

func TestWasmUpper(t *testing.T) {
	g := newGuest(t, "examples/go/upper")
	// Full case mapping: ß is SS, as in SQL engines (strings.ToUpper keeps ß).
	in := []*string{sp("hello"), nil, sp(""), sp("äbç ñ"), sp("straße"), sp("MiXeD 123"), nil, sp("ǆ ﬃ")}
	want := []any{"HELLO", nil, "", "ÄBÇ Ñ", "STRASSE", "MIXED 123", nil, "Ǆ FFI"}
	b := &Batch{Rows: uint32(len(in)), Columns: []*Column{varcharColumn(in)}}
	for range 3 { // repeated calls reuse the guest's buffers
		col, errs, err := g.call("upper", b, []udf.Type{udf.Varchar}, udf.Varchar)
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, "upper", col, errs, want, nil)
	}

	// The host refuses VARCHAR input that is not UTF-8 (ValidateBatch); a
	// guest handed some anyway fails that row.
	bad := &Batch{Rows: 2, Columns: []*Column{varcharColumn([]*string{sp("bad \xff\xfe utf8"), sp("ok")})}}
	region := AppendInput(nil, bad)
	res := g.callRaw("upper", g.place(region), uint32(len(region)))
	mem, _ := g.mod.Memory().Read(0, g.mod.Memory().Size())
	out, err := CopyOutput(nil, mem, uint32(res), uint32(res>>32), 2, udf.Varchar)
	if err != nil {
		t.Fatal(err)
	}
	col, errs, err := DecodeOutput(out, 2, udf.Varchar)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, "upper of invalid UTF-8", col, errs, []any{nil, "OK"}, map[int]string{0: "upper: argument is not valid UTF-8"})

	// An empty batch.
	empty := &Batch{Columns: []*Column{{Type: udf.Varchar}}}
	col, errs, err = g.call("upper", empty, []udf.Type{udf.Varchar}, udf.Varchar)
	if err != nil || len(errs) != 0 || len(col.Values) != 0 {
		t.Errorf("empty batch: %v %v %v", col, errs, err)
	}

	// Called with the wrong argument type, every row fails with a message
	// naming both signatures.
	wrong := &Batch{Rows: 2, Columns: []*Column{sampleColumn(udf.BigInt, 2, false)}}
	_, errs, err = g.call("upper", wrong, []udf.Type{udf.BigInt}, udf.Varchar)
	if err != nil || len(errs) != 2 || errs[0].Message != "guest: function takes (VARCHAR), called with (BIGINT)" {
		t.Errorf("wrong argument type: %v %v", errs, err)
	}
}

func TestWasmMalformedInput(t *testing.T) {
	g := newGuest(t, "examples/go/upper")
	b := &Batch{Rows: 1, Columns: []*Column{varcharColumn([]*string{sp("x")})}}
	region := AppendInput(nil, b)
	bad := append([]byte(nil), region...)
	bad[0] ^= 0xff // magic
	ptr := g.place(bad)
	if res := g.callRaw("upper", ptr, uint32(len(bad))); res != 0 {
		t.Errorf("bad magic: got %#x, want 0", res)
	}
	if _, err := CopyOutput(nil, nil, 0, 0, 1, udf.Varchar); !errors.Is(err, ErrBatchFailed) {
		t.Errorf("CopyOutput of 0: %v", err)
	}
	ptr = g.place(region)
	if res := g.callRaw("upper", ptr, uint32(len(region))+1<<20); res != 0 {
		t.Errorf("length past the input buffer: got %#x, want 0", res)
	}
	if res := g.callRaw("upper", 8, uint32(len(region))); res != 0 {
		t.Errorf("pointer outside the input buffer: got %#x, want 0", res)
	}
	// Offsets past the values.
	le := binary.LittleEndian
	bad = append([]byte(nil), region...)
	le.PutUint32(bad[inHeaderSize+16:], 0) // values_len
	ptr = g.place(bad)
	if res := g.callRaw("upper", ptr, uint32(len(bad))); res != 0 {
		t.Errorf("offsets past values: got %#x, want 0", res)
	}
	// The instance still works.
	if _, _, err := g.call("upper", b, []udf.Type{udf.Varchar}, udf.Varchar); err != nil {
		t.Errorf("after malformed inputs: %v", err)
	}
}

func TestWasmAffine(t *testing.T) {
	g := newGuest(t, "examples/go/affine")
	const rows = 1024
	cols := make([]*colBuilder, 3)
	for i := range cols {
		cols[i] = newColBuilder(udf.BigInt)
	}
	want := make([]any, rows)
	for r := range rows {
		a, b, c := int64(r-500), int64(r*r), int64(-7)
		if r == 3 {
			a, b, c = 1<<62, 4, 1 // wraps
		}
		nullCol := -1
		if r%5 == 1 {
			nullCol = r % 3
		}
		for i, v := range []int64{a, b, c} {
			if i == nullCol {
				cols[i].add(nil)
			} else {
				cols[i].add(v)
			}
		}
		if nullCol < 0 {
			want[r] = a*b + c
		}
	}
	batch := &Batch{Rows: rows, Columns: []*Column{cols[0].column(), cols[1].column(), cols[2].column()}}
	types := []udf.Type{udf.BigInt, udf.BigInt, udf.BigInt}
	// affine is vectorised, affine_rows row-at-a-time: same answers.
	for _, export := range []string{"affine", "affine_rows"} {
		col, errs, err := g.call(export, batch, types, udf.BigInt)
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, export, col, errs, want, nil)
	}

	// Steady batches do not grow the guest's memory.
	var size uint32
	for i := range 200 {
		if i == 20 {
			size = g.mod.Memory().Size()
		}
		if _, _, err := g.call("affine", batch, types, udf.BigInt); err != nil {
			t.Fatal(err)
		}
	}
	if grown := g.mod.Memory().Size(); grown != size {
		t.Errorf("memory grew from %d to %d bytes over 180 identical batches", size, grown)
	}
}

func TestWasmSha256hex(t *testing.T) {
	g := newGuest(t, "examples/go/sha256hex")
	b := newColBuilder(udf.Bytes)
	for _, v := range []any{"", nil, "abc"} {
		b.add(v)
	}
	batch := &Batch{Rows: 3, Columns: []*Column{b.column()}}
	col, errs, err := g.call("sha256hex", batch, []udf.Type{udf.Bytes}, udf.Varchar)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, "sha256hex", col, errs, []any{
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		nil,
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	}, nil)
}

func TestWasmSDKEcho(t *testing.T) {
	g := newGuest(t, "guest/internal/testudf")
	for _, typ := range allTypes {
		for _, rows := range rowCounts {
			for _, nulls := range []bool{false, true} {
				in := sampleColumn(typ, rows, nulls)
				b := &Batch{Rows: uint32(rows), Columns: []*Column{in}}
				export := "echo_" + strings.ToLower(typ.String())
				col, errs, err := g.call(export, b, []udf.Type{typ}, typ)
				if err != nil {
					t.Fatalf("%s rows=%d: %v", export, rows, err)
				}
				checkDecoded(t, export, col, errs, outputCase{col: in, rows: rows})
			}
		}
	}
}

func TestWasmSDKRowErrors(t *testing.T) {
	g := newGuest(t, "guest/internal/testudf")
	b := newColBuilder(udf.BigInt)
	for _, v := range []any{int64(5), int64(0), nil, int64(-3), int64(50)} {
		b.add(v)
	}
	batch := &Batch{Rows: 5, Columns: []*Column{b.column()}}
	col, errs, err := g.call("checked", batch, []udf.Type{udf.BigInt}, udf.BigInt)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, "checked", col, errs, []any{int64(20), nil, nil, nil, int64(2)}, map[int]string{
		1: "zero is not allowed",
		3: "panic: runtime error: index out of range [3] with length 0",
	})

	col, errs, err = g.call("failbatch", batch, []udf.Type{udf.BigInt}, udf.BigInt)
	if err != nil {
		t.Fatal(err)
	}
	all := map[int]string{}
	for i := range 5 {
		all[i] = "failbatch: no"
	}
	checkRows(t, "failbatch", col, errs, make([]any, 5), all)

	in := []*string{sp("a"), sp("b"), nil, sp(""), sp("long string")}
	batch = &Batch{Rows: 5, Columns: []*Column{varcharColumn(in)}}
	col, errs, err = g.call("reverse", batch, []udf.Type{udf.Varchar}, udf.Varchar)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, "reverse", col, errs, []any{nil, nil, nil, "!", "long string!"}, map[int]string{0: "late", 1: "first"})
}

// TestWasmVarcharResultMustBeUTF8: a guest that returns bytes that are not
// UTF-8 as VARCHAR gets those rows turned into row errors by the host.
func TestWasmVarcharResultMustBeUTF8(t *testing.T) {
	g := newGuest(t, "guest/internal/testudf")
	b := newColBuilder(udf.Bytes)
	for _, v := range []any{"ok", "\xff", nil, "straße", "\xc3"} {
		b.add(v)
	}
	batch := &Batch{Rows: 5, Columns: []*Column{b.column()}}
	col, errs, err := g.call("varchar_of_bytes", batch, []udf.Type{udf.Bytes}, udf.Varchar)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, "varchar_of_bytes", col, errs, []any{"ok", nil, nil, "straße", nil}, map[int]string{
		1: "row 1: result is not valid UTF-8",
		4: "row 4: result is not valid UTF-8",
	})
}

// checkRows checks a decoded result against want (nil = NULL) and the row
// errors against wantErrs.
func checkRows(t *testing.T, name string, col *Column, errs []*RowError, want []any, wantErrs map[int]string) {
	t.Helper()
	got := map[int]string{}
	for _, e := range errs {
		got[int(e.Row)] = e.Message
	}
	if len(got) != len(wantErrs) || len(errs) != len(wantErrs) {
		t.Errorf("%s: row errors %v, want %v", name, got, wantErrs)
	}
	for row, msg := range wantErrs {
		if got[row] != msg {
			t.Errorf("%s: row %d error %q, want %q", name, row, got[row], msg)
		}
	}
	c := protoCol(col)
	for row, w := range want {
		if g := colValue(c, row); !sameValue(g, w) {
			t.Errorf("%s: row %d = %#v, want %#v", name, row, g, w)
		}
	}
}
