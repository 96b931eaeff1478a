package guest

import "unsafe"

// The typed fast paths below read and write Arrow buffers as Go slices of
// their element type. Go's wasm backend makes every non-inlined call
// expensive, so per-row work is kept to the user's function itself.
// wasm is little-endian and the ABI aligns every buffer to 8 bytes, so the
// reinterpretation is exact.

// int64s returns the first rows values of a BIGINT column.
func (c *Column) int64s(rows int) []int64 {
	if rows == 0 {
		return nil
	}
	return unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(c.values))), rows)[:rows:rows]
}

// int64s returns the BIGINT result's values.
func (r *Result) int64s() []int64 {
	if r.rows == 0 {
		return nil
	}
	return unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(r.values))), r.rows)
}

// hasNulls reports whether any argument column carries a validity bitmap.
func (b *Batch) hasNulls() bool {
	for i := range b.cols {
		if b.cols[i].validity != nil {
			return true
		}
	}
	return false
}

// validFromArgs marks valid exactly the rows whose arguments are all valid
// (NULL in, NULL out) and returns the result bitmap, so the row loop tests
// one bit instead of every column.
func (r *Result) validFromArgs(in *Batch) []byte {
	v := r.validity
	for i := range v {
		v[i] = 0xff
	}
	for c := range in.cols {
		if bm := in.cols[c].validity; bm != nil {
			for i := range v {
				v[i] &= bm[i]
			}
		}
	}
	if rem := r.rows & 7; rem != 0 && len(v) > 0 {
		v[len(v)-1] &= byte(1)<<rem - 1
	}
	return v
}

// guarded runs loop from row 0; if it panics while at names a row, that
// row gets the panic as its error and the loop resumes after it. The defer
// is paid once per resumption, not once per row.
func guarded(out *Result, rows int, at *int, loop func(from int)) {
	for from := 0; from < rows; {
		from = guardedFrom(out, rows, at, from, loop)
	}
}

func guardedFrom(out *Result, rows int, at *int, from int, loop func(from int)) (next int) {
	defer func() {
		if p := recover(); p != nil {
			out.SetError(*at, panicError(p))
			next = *at + 1
		}
	}()
	*at = from
	loop(from)
	return rows
}

// VecInt64x3 runs fn once on whole columns of a (BIGINT, BIGINT, BIGINT) ->
// BIGINT function: fn writes out[i] from a[i], b[i], c[i] for every i. This
// is the vectorised form (as pandas UDFs are in PyFlink): one call per batch,
// so the loop is the author's own and costs what Go's loop costs. Rows with
// a NULL argument are NULL whatever fn writes there; their inputs hold
// unspecified values, so fn must not fail on any value. An error from fn
// fails every row of the batch.
func VecInt64x3(ptr, n uint32, fn func(a, b, c, out []int64) error) uint64 {
	return Call(ptr, n, BigInt, func(in *Batch, out *Result) error {
		if err := in.CheckArgs(BigInt, BigInt, BigInt); err != nil {
			return err
		}
		out.validFromArgs(in)
		return fn(in.cols[0].int64s(in.rows), in.cols[1].int64s(in.rows), in.cols[2].int64s(in.rows), out.int64s())
	})
}

// VecInt64x2 is VecInt64x3 for (BIGINT, BIGINT) -> BIGINT.
func VecInt64x2(ptr, n uint32, fn func(a, b, out []int64) error) uint64 {
	return Call(ptr, n, BigInt, func(in *Batch, out *Result) error {
		if err := in.CheckArgs(BigInt, BigInt); err != nil {
			return err
		}
		out.validFromArgs(in)
		return fn(in.cols[0].int64s(in.rows), in.cols[1].int64s(in.rows), out.int64s())
	})
}

// uint32s returns the rows+1 offsets of a VARCHAR or BYTES column.
func (c *Column) uint32s(rows int) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(c.offsets))), rows+1)[: rows+1 : rows+1]
}

// MapStringAppend runs fn on every row of a (VARCHAR) -> VARCHAR function,
// like MapString, but fn appends its result to dst and returns the extended
// slice instead of returning a new string. Nothing is allocated per row,
// which matters in wasm: Go's allocator there costs about a microsecond per
// call. Rows with a NULL argument are NULL without calling fn; s aliases the
// input and is valid only during the call.
func MapStringAppend(ptr, n uint32, fn func(dst []byte, s string) ([]byte, error)) uint64 {
	return Call(ptr, n, Varchar, func(in *Batch, out *Result) error {
		if err := in.CheckArgs(Varchar); err != nil {
			return err
		}
		offs, vals := in.cols[0].uint32s(in.rows), in.cols[0].values
		valid := out.validFromArgs(in)
		spans := out.spans
		var at int
		guarded(out, in.rows, &at, func(from int) {
			data := out.data
			for i := from; i < in.rows; i++ {
				if valid[i>>3]&(1<<(uint(i)&7)) == 0 {
					continue
				}
				at = i
				start := len(data)
				var s string
				if e := offs[i+1]; e > offs[i] {
					s = unsafe.String(&vals[offs[i]], e-offs[i])
				}
				var err error
				if data, err = fn(data, s); err != nil {
					data = data[:start]
					out.data = data
					out.SetError(i, err)
					continue
				}
				spans[2*i], spans[2*i+1] = uint32(start), uint32(len(data))
				out.data = data
			}
		})
		return nil
	})
}
