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
