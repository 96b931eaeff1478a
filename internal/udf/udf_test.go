package udf

import (
	"testing"

	"github.com/tetratelabs/wazero/api"
)

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{
		Int: "INT", BigInt: "BIGINT", Float: "FLOAT", Double: "DOUBLE", Boolean: "BOOLEAN",
		Varchar: "VARCHAR", Bytes: "BYTES", Unspecified: "unset (TYPE_UNSPECIFIED)",
		8: "unknown (SqlType 8)", -1: "unknown (SqlType -1)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", int32(typ), got, want)
		}
	}
}

func TestDirectWasmType(t *testing.T) {
	for typ, want := range map[Type]byte{
		Int: WasmI32, Boolean: WasmI32, BigInt: WasmI64, Float: WasmF32, Double: WasmF64,
		Varchar: 0, Bytes: 0, Unspecified: 0,
	} {
		if got := typ.DirectWasmType(); got != want {
			t.Errorf("%v.DirectWasmType() = %#x, want %#x", typ, got, want)
		}
	}
}

func TestABIString(t *testing.T) {
	for a, want := range map[ABI]string{ABIDirect: "direct", ABIBatch: "batch", 0: "unspecified", 9: "9"} {
		if got := a.String(); got != want {
			t.Errorf("ABI(%d).String() = %q, want %q", uint8(a), got, want)
		}
	}
}

// The worker hands these bytes to wazero as api.ValueType.
func TestWasmTypesAreWazeros(t *testing.T) {
	for got, want := range map[byte]api.ValueType{WasmI32: api.ValueTypeI32, WasmI64: api.ValueTypeI64, WasmF32: api.ValueTypeF32, WasmF64: api.ValueTypeF64} {
		if got != want {
			t.Errorf("wasm value type %#x, wazero says %#x (%s)", got, want, api.ValueTypeName(want))
		}
	}
}

func TestWidth(t *testing.T) {
	for typ, want := range map[Type]int{Int: 4, Float: 4, BigInt: 8, Double: 8, Boolean: 0, Varchar: 0, Bytes: 0, Unspecified: 0} {
		if got := typ.Width(); got != want {
			t.Errorf("%v.Width() = %d, want %d", typ, got, want)
		}
	}
}
