// Command testudf is a test fixture for the guest SDK: internal/abi's tests
// build it to wasm and check the SDK's output region for every type and
// error path. It is not an example to copy.
package main

import (
	"errors"

	"github.com/udfhost/udfhost/guest"
)

// echo returns its only argument unchanged, through CallRows.
func echo(ptr, n uint32, t guest.Type) uint64 {
	return guest.CallRows(ptr, n, t, func(in *guest.Batch, row int, out *guest.Result) error {
		c := in.Col(0)
		switch t {
		case guest.Int:
			out.SetInt32(row, c.Int32(row))
		case guest.BigInt:
			out.SetInt64(row, c.Int64(row))
		case guest.Float:
			out.SetFloat32(row, c.Float32(row))
		case guest.Double:
			out.SetFloat64(row, c.Float64(row))
		case guest.Boolean:
			out.SetBool(row, c.Bool(row))
		case guest.Varchar:
			out.SetString(row, c.String(row))
		case guest.Bytes:
			out.SetBytes(row, c.Bytes(row))
		}
		return nil
	})
}

//go:wasmexport echo_int
func echoInt(ptr, n uint32) uint64 { return echo(ptr, n, guest.Int) }

//go:wasmexport echo_bigint
func echoBigint(ptr, n uint32) uint64 { return echo(ptr, n, guest.BigInt) }

//go:wasmexport echo_float
func echoFloat(ptr, n uint32) uint64 { return echo(ptr, n, guest.Float) }

//go:wasmexport echo_double
func echoDouble(ptr, n uint32) uint64 { return echo(ptr, n, guest.Double) }

//go:wasmexport echo_boolean
func echoBoolean(ptr, n uint32) uint64 { return echo(ptr, n, guest.Boolean) }

//go:wasmexport echo_varchar
func echoVarchar(ptr, n uint32) uint64 { return echo(ptr, n, guest.Varchar) }

//go:wasmexport echo_bytes
func echoBytes(ptr, n uint32) uint64 { return echo(ptr, n, guest.Bytes) }

var errZero = errors.New("zero is not allowed")

// checked (BIGINT -> BIGINT) returns 100/a: a zero argument is a returned
// error, a negative one a panic, both row errors.
//
//go:wasmexport checked
func checked(ptr, n uint32) uint64 {
	return guest.MapInt64(ptr, n, func(a int64) (int64, error) {
		if a == 0 {
			return 0, errZero
		}
		if a < 0 {
			var s []int64
			return s[-a], nil // index out of range
		}
		return 100 / a, nil
	})
}

// failbatch (any -> BIGINT) fails the whole batch with an error.
//
//go:wasmexport failbatch
func failbatch(ptr, n uint32) uint64 {
	return guest.Call(ptr, n, guest.BigInt, func(in *guest.Batch, out *guest.Result) error {
		return errors.New("failbatch: no")
	})
}

// reverse (VARCHAR -> VARCHAR) sets rows in reverse order and exercises the
// error rules: row 0 gets two errors (the last wins) and row 1 an error and
// then a value (the error stands).
//
//go:wasmexport reverse
func reverse(ptr, n uint32) uint64 {
	return guest.Call(ptr, n, guest.Varchar, func(in *guest.Batch, out *guest.Result) error {
		if err := in.CheckArgs(guest.Varchar); err != nil {
			return err
		}
		c := in.Col(0)
		for row := in.Rows() - 1; row >= 0; row-- {
			if !c.IsNull(row) {
				out.SetString(row, c.String(row)+"!")
			}
		}
		if in.Rows() > 1 {
			out.SetError(1, errors.New("first"))
			out.SetString(1, "ignored")
			out.SetError(0, errors.New("early"))
			out.SetError(0, errors.New("late"))
		}
		return nil
	})
}

// varchar_of_bytes (BYTES -> VARCHAR) returns its argument's bytes as a
// VARCHAR without checking that they are UTF-8, as a careless guest would:
// the host must turn rows that are not into row errors.
//
//go:wasmexport varchar_of_bytes
func varcharOfBytes(ptr, n uint32) uint64 {
	return guest.CallRows(ptr, n, guest.Varchar, func(in *guest.Batch, row int, out *guest.Result) error {
		out.SetBytes(row, in.Col(0).Bytes(row))
		return nil
	})
}

func main() {}
