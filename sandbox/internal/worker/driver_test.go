package worker

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/sandbox/internal/testmod"
	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

const typesWAT = `(module
  (func (export "mix") (param i32 i64 f32 f64 i32) (result f64)
    (f64.add
      (f64.add (f64.convert_i32_s (local.get 0)) (f64.convert_i64_s (local.get 1)))
      (f64.add (f64.add (f64.promote_f32 (local.get 2)) (local.get 3))
               (select (f64.const 1000) (f64.const 0) (local.get 4)))))
  (func (export "not") (param i32) (result i32) (i32.eqz (local.get 0)))
  (func (export "half") (param f32) (result f32) (f32.div (local.get 0) (f32.const 2)))
  (func (export "neg") (param i32) (result i32) (i32.sub (i32.const 0) (local.get 0)))
  (func (export "big") (param i64) (result i64) (i64.mul (local.get 0) (i64.const 3))))`

// col is a test column: values as float64 (exact for the ranges used) and
// which rows are NULL.
type col struct {
	t     udf.Type
	vals  []float64
	nulls []bool
}

func (c col) proto() *abi.Column {
	p := &abi.Column{Type: c.t}
	rows := len(c.vals)
	p.Validity = make([]byte, (rows+7)/8)
	if c.t == udf.Boolean {
		p.Values = make([]byte, (rows+7)/8)
	}
	for i, v := range c.vals {
		if !c.nulls[i] {
			p.Validity[i/8] |= 1 << (i % 8)
		}
		switch c.t {
		case udf.Int:
			p.Values = binary.LittleEndian.AppendUint32(p.Values, uint32(int32(v)))
		case udf.BigInt:
			p.Values = binary.LittleEndian.AppendUint64(p.Values, uint64(int64(v)))
		case udf.Float:
			p.Values = binary.LittleEndian.AppendUint32(p.Values, math.Float32bits(float32(v)))
		case udf.Double:
			p.Values = binary.LittleEndian.AppendUint64(p.Values, math.Float64bits(v))
		case udf.Boolean:
			if v != 0 {
				p.Values[i/8] |= 1 << (i % 8)
			}
		}
	}
	return p
}

func randCol(rng *rand.Rand, t udf.Type, rows int) col {
	c := col{t: t, vals: make([]float64, rows), nulls: make([]bool, rows)}
	for i := range c.vals {
		c.nulls[i] = rng.IntN(5) == 0
		switch t {
		case udf.Boolean:
			c.vals[i] = float64(rng.IntN(2))
		case udf.Float:
			c.vals[i] = float64(rng.IntN(2000)-1000) / 4
		default:
			c.vals[i] = float64(rng.IntN(2_000_000) - 1_000_000)
		}
	}
	return c
}

func readResult(t *testing.T, c *abi.Column, r int) (float64, bool) {
	t.Helper()
	if len(c.Validity) > 0 && c.Validity[r/8]&(1<<(r%8)) == 0 {
		return 0, false
	}
	switch c.Type {
	case udf.Int:
		return float64(int32(binary.LittleEndian.Uint32(c.Values[4*r:]))), true
	case udf.BigInt:
		return float64(int64(binary.LittleEndian.Uint64(c.Values[8*r:]))), true
	case udf.Float:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(c.Values[4*r:]))), true
	case udf.Double:
		return math.Float64frombits(binary.LittleEndian.Uint64(c.Values[8*r:])), true
	case udf.Boolean:
		if c.Values[r/8]&(1<<(r%8)) != 0 {
			return 1, true
		}
		return 0, true
	}
	t.Fatalf("type %v", c.Type)
	return 0, false
}

// TestDriverAllTypes checks the generated driver for every direct type as
// argument and result, with NULLs, at row counts around the unroll factor.
func TestDriverAllTypes(t *testing.T) {
	const (
		tInt, tBig, tFlt, tDbl, tBool = udf.Int, udf.BigInt, udf.Float, udf.Double, udf.Boolean
	)
	funcs := []struct {
		export string
		args   []udf.Type
		result udf.Type
		want   func(v []float64) float64
	}{
		{"mix", []udf.Type{tInt, tBig, tFlt, tDbl, tBool}, tDbl, func(v []float64) float64 {
			return v[0] + v[1] + (float64(float32(v[2])) + v[3]) + 1000*v[4]
		}},
		{"not", []udf.Type{tBool}, tBool, func(v []float64) float64 { return 1 - v[0] }},
		{"half", []udf.Type{tFlt}, tFlt, func(v []float64) float64 { return float64(float32(v[0]) / 2) }},
		{"neg", []udf.Type{tInt}, tInt, func(v []float64) float64 { return -v[0] }},
		{"big", []udf.Type{tBig}, tBig, func(v []float64) float64 { return 3 * v[0] }},
	}
	ctx := context.Background()
	e, err := newEngine(ctx, engineConfig{MemoryLimitPages: 64, MaxInstances: 1}, testmod.WAT(t, typesWAT))
	if err != nil {
		t.Fatal(err)
	}
	defer e.close(ctx)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range funcs {
		for _, rows := range []int{1, 15, 16, 17, 100, 1024} {
			cols := make([]col, len(f.args))
			batch := &abi.Batch{Rows: uint32(rows)}
			for i, at := range f.args {
				cols[i] = randCol(rng, at, rows)
				batch.Columns = append(batch.Columns, cols[i].proto())
			}
			spec := &wire.FuncSpec{Export: f.export, ABI: udf.ABIDirect, Args: f.args, Result: f.result}
			out, err := e.call(ctx, spec, time.Second, abi.AppendInput(nil, batch), nil)
			if err != nil {
				t.Fatalf("%s/%d: %v", f.export, rows, err)
			}
			res, _, err := abi.DecodeOutput(out, rows, f.result)
			if err != nil {
				t.Fatalf("%s/%d: %v", f.export, rows, err)
			}
			for r := 0; r < rows; r++ {
				args := make([]float64, len(cols))
				null := false
				for i, c := range cols {
					args[i] = c.vals[r]
					null = null || c.nulls[r]
				}
				got, valid := readResult(t, res, r)
				if valid == null {
					t.Fatalf("%s/%d row %d: valid=%v, args null=%v", f.export, rows, r, valid, null)
				}
				if valid && got != f.want(args) {
					t.Fatalf("%s/%d row %d: f(%v) = %v, want %v", f.export, rows, r, args, got, f.want(args))
				}
			}
		}
	}
}
