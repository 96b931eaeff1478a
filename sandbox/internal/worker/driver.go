package worker

import (
	"bytes"
	"fmt"

	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/internal/wasmenc"
	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// The direct ABI calls a plain numeric export once per row. Calling it from
// Go once per row would cost a wazero call each (with WithCloseOnContextDone,
// a goroutine each: ~800 ns). Instead a tiny driver module, generated here
// per export and signature, imports the export and loops over the rows
// inside wasm, so a batch is one call from Go, as with the batch ABI.
//
// The driver exports its memory and
//
//	run(rows, vals_1, valid_1, …, vals_n, valid_n, out_vals, out_valid)
//
// where vals_i/valid_i point at column i's Arrow values and validity bitmap
// in the driver's memory (valid_i = 0: all rows valid). A row with a NULL
// argument is skipped (its result stays NULL); otherwise the result is
// stored at out_vals and its bit set in out_valid, which the host zeroes.

// driverUnroll is how many rows one driver loop iteration handles.
const driverUnroll = 16

// wasm opcodes and encodings used by the generator.
const (
	opBlock, opLoop, opIf, opEnd, opBr, opBrIf, opCall = 0x02, 0x03, 0x04, 0x0b, 0x0c, 0x0d, 0x10
	opLocalGet, opLocalSet                             = 0x20, 0x21
	opI32Load, opI64Load, opF32Load, opF64Load         = 0x28, 0x29, 0x2a, 0x2b
	opI32Load8U                                        = 0x2d
	opI32Store, opI64Store, opF32Store, opF64Store     = 0x36, 0x37, 0x38, 0x39
	opI32Store8                                        = 0x3a
	opI32Const, opI32Eqz, opI32GeU                     = 0x41, 0x45, 0x4f
	opI32Add, opI32And, opI32Or, opI32Shl, opI32ShrU   = 0x6a, 0x71, 0x72, 0x74, 0x76
	blockVoid                                          = wasmenc.BlockEmpty
)

// driverModule returns the driver for calling export with spec's types.
func driverModule(spec *wire.FuncSpec) ([]byte, error) {
	for _, t := range append(append([]udf.Type{}, spec.Args...), spec.Result) {
		if t.DirectWasmType() == 0 {
			return nil, fmt.Errorf("type %v has no direct-ABI mapping", t)
		}
	}
	n := len(spec.Args)
	var udfParams []byte
	for _, t := range spec.Args {
		udfParams = append(udfParams, t.DirectWasmType())
	}
	runParams := bytes.Repeat([]byte{wasmenc.I32}, 2*n+3)

	rows := uint32(0)
	outVals, outValid := uint32(2*n+1), uint32(2*n+2)
	r := uint32(2*n + 3) // the row counter, the only declared local
	boolResult := spec.Result == udf.Boolean
	var b []byte
	get := func(l uint32) { b = append(append(b, opLocalGet), wasmenc.ULEB128(l)...) }
	i32 := func(v int32) { b = append(append(b, opI32Const), wasmenc.SLEB128(v)...) }
	// addr(base, shift) pushes base + (r << shift).
	addr := func(base uint32, shift int32) {
		get(base)
		get(r)
		if shift > 0 {
			i32(shift)
			b = append(b, opI32Shl)
		}
		b = append(b, opI32Add)
	}
	// byteAddr pushes base + (r >> 3), the byte holding r's bit.
	byteAddr := func(base uint32) {
		get(base)
		get(r)
		i32(3)
		b = append(b, opI32ShrU, opI32Add)
	}
	// bit pushes (mem[base + r>>3] >> (r & 7)) & 1.
	bit := func(base uint32) {
		byteAddr(base)
		b = append(b, opI32Load8U, 0, 0)
		get(r)
		i32(7)
		b = append(b, opI32And, opI32ShrU)
		i32(1)
		b = append(b, opI32And)
	}
	// setBit does mem[base + r>>3] |= 1 << (r & 7).
	setBit := func(base uint32) {
		byteAddr(base)
		byteAddr(base)
		b = append(b, opI32Load8U, 0, 0)
		i32(1)
		get(r)
		i32(7)
		b = append(b, opI32And, opI32Shl, opI32Or, opI32Store8, 0, 0)
	}

	// The loop body handles driverUnroll rows, each behind its own bounds
	// check (forward branches are free): wazero's ensureTermination costs
	// an exit to Go on every loop back-edge, so that cost is paid once per
	// driverUnroll rows instead of once per row.
	b = append(b, opBlock, blockVoid, opLoop, blockVoid)
	for k := 0; k < driverUnroll; k++ {
		get(r)
		get(rows)
		b = append(b, opI32GeU, opBrIf, 1)
		b = append(b, opBlock, blockVoid) // $row: br 0 here skips to the increment
		for i := 0; i < n; i++ {
			valid := uint32(2*i + 2)
			get(valid)
			b = append(b, opIf, blockVoid)
			bit(valid)
			b = append(b, opI32Eqz, opBrIf, 1, opEnd)
		}
		if !boolResult {
			addr(outVals, int32(widthShift(spec.Result)))
		}
		for i, t := range spec.Args {
			vals := uint32(2*i + 1)
			switch t {
			case udf.Boolean:
				bit(vals)
			default:
				addr(vals, int32(widthShift(t)))
				b = append(b, loadOp(t), byte(widthShift(t)), 0)
			}
		}
		b = append(b, opCall, 0)
		if boolResult {
			b = append(b, opIf, blockVoid)
			setBit(outVals)
			b = append(b, opEnd)
		} else {
			b = append(b, storeOp(spec.Result), byte(widthShift(spec.Result)), 0)
		}
		setBit(outValid)
		b = append(b, opEnd) // $row
		get(r)
		i32(1)
		b = append(b, opI32Add, opLocalSet)
		b = append(b, wasmenc.ULEB128(r)...)
	}
	b = append(b, opBr, 0, opEnd, opEnd, opEnd) // loop, block, function

	return wasmenc.Module(
		wasmenc.Section(wasmenc.SecType, wasmenc.Vec( // 0: the UDF's, 1: run's
			wasmenc.FuncType(udfParams, []byte{spec.Result.DirectWasmType()}),
			wasmenc.FuncType(runParams, nil))),
		wasmenc.Section(wasmenc.SecImport, wasmenc.Vec(wasmenc.Import("udf", spec.Export, wasmenc.ExternFunc, wasmenc.ULEB128(0)))),
		wasmenc.Section(wasmenc.SecFunction, wasmenc.Vec(wasmenc.ULEB128(1))),
		wasmenc.Section(wasmenc.SecMemory, wasmenc.Vec([]byte{0x00, 0x01})), // min 1 page, no max: the pool limit applies
		wasmenc.Section(wasmenc.SecExport, wasmenc.Vec(
			wasmenc.Export("run", wasmenc.ExternFunc, 1),
			wasmenc.Export("memory", wasmenc.ExternMemory, 0))),
		wasmenc.Section(wasmenc.SecCode, wasmenc.Vec(wasmenc.Body([]wasmenc.Local{{N: 1, Type: wasmenc.I32}}, b))),
	), nil
}

func widthShift(t udf.Type) int {
	switch t {
	case udf.BigInt, udf.Double:
		return 3
	}
	return 2
}

func loadOp(t udf.Type) byte {
	switch t {
	case udf.BigInt:
		return opI64Load
	case udf.Float:
		return opF32Load
	case udf.Double:
		return opF64Load
	}
	return opI32Load
}

func storeOp(t udf.Type) byte {
	switch t {
	case udf.BigInt:
		return opI64Store
	case udf.Float:
		return opF32Store
	case udf.Double:
		return opF64Store
	}
	return opI32Store
}
