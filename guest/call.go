package guest

import "errors"

var (
	theBatch  Batch
	theResult Result
	busy      bool
)

// Call runs fn on the batch at (ptr, n) with a result of type result and
// returns the packed output region, the value the export must return. fn
// sets each row of out (rows it leaves alone are NULL). If fn returns an
// error or panics, every row fails with that message. Call returns 0 (the
// batch fails) if the input is malformed or result is not a valid Type.
func Call(ptr, n uint32, result Type, fn func(in *Batch, out *Result) error) uint64 {
	buf, ok := input(ptr, n)
	if !ok || !result.valid() || busy || !theBatch.parse(buf) {
		return 0
	}
	busy = true
	defer func() { busy = false }()
	theResult.reset(result, theBatch.rows)
	if err := protect(fn, &theBatch, &theResult); err != nil {
		theResult.failAll(err)
	}
	out := theResult.finish()
	return uint64(len(out))<<32 | uint64(addrOf(outBuf))
}

// protect calls fn, turning a panic into an error.
func protect(fn func(in *Batch, out *Result) error, in *Batch, out *Result) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError(p)
		}
	}()
	return fn(in, out)
}

// CallRows runs fn once per row of the batch at (ptr, n), with a result of
// type result, and returns the packed output region. Rows where any argument
// is NULL are NULL without calling fn. An error returned by fn, or a panic,
// becomes that row's error. It returns 0 for a malformed input.
func CallRows(ptr, n uint32, result Type, fn func(in *Batch, row int, out *Result) error) uint64 {
	return Call(ptr, n, result, func(in *Batch, out *Result) error {
		forRows(in, out, func(row int) error { return fn(in, row, out) })
		return nil
	})
}

// forRows calls fn for every row without a NULL argument, turning a returned
// error or a panic into the row's error.
func forRows(in *Batch, out *Result, fn func(row int) error) {
	for row := 0; row < in.rows; {
		row = runFrom(in, out, row, fn)
	}
}

// runFrom runs rows [row, in.rows) until one panics and returns the row to
// resume at.
func runFrom(in *Batch, out *Result, row int, fn func(row int) error) (next int) {
	defer func() {
		if p := recover(); p != nil {
			out.SetError(row, panicError(p))
			next = row + 1
		}
	}()
	nulls := in.hasNulls()
	for ; row < in.rows; row++ {
		if nulls && in.anyNull(row) {
			continue
		}
		if err := fn(row); err != nil {
			out.SetError(row, err)
		}
	}
	return row
}

// panicError turns a recovered panic value into an error.
func panicError(p any) error {
	var msg string
	switch v := p.(type) {
	case error:
		msg = v.Error()
	case string:
		msg = v
	case interface{ String() string }:
		msg = v.String()
	case int:
		msg = itoa(int64(v))
	case int64:
		msg = itoa(v)
	default:
		msg = "value of unprintable type"
	}
	return errors.New("panic: " + msg)
}

// MapString computes a VARCHAR -> VARCHAR function row by row (see
// CallRows). s aliases the input: clone it to keep it after fn returns.
func MapString(ptr, n uint32, fn func(s string) (string, error)) uint64 {
	return Call(ptr, n, Varchar, func(in *Batch, out *Result) error {
		if err := in.CheckArgs(Varchar); err != nil {
			return err
		}
		c := in.Col(0)
		forRows(in, out, func(row int) error {
			v, err := fn(c.String(row))
			if err == nil {
				out.SetString(row, v)
			}
			return err
		})
		return nil
	})
}

// MapBytes computes a BYTES -> BYTES function row by row (see CallRows). b
// aliases the input: do not modify it, and clone it to keep it.
func MapBytes(ptr, n uint32, fn func(b []byte) ([]byte, error)) uint64 {
	return Call(ptr, n, Bytes, func(in *Batch, out *Result) error {
		if err := in.CheckArgs(Bytes); err != nil {
			return err
		}
		c := in.Col(0)
		forRows(in, out, func(row int) error {
			v, err := fn(c.Bytes(row))
			if err == nil {
				out.SetBytes(row, v)
			}
			return err
		})
		return nil
	})
}

// MapInt64 runs fn on every row of a (BIGINT) -> BIGINT function; rows with
// a NULL argument are NULL without calling fn.
func MapInt64(ptr, n uint32, fn func(a int64) (int64, error)) uint64 {
	return Call(ptr, n, BigInt, func(in *Batch, out *Result) error {
		if err := in.CheckArgs(BigInt); err != nil {
			return err
		}
		a, dst, valid := in.cols[0].int64s(in.rows), out.int64s(), out.validFromArgs(in)
		var at int
		guarded(out, in.rows, &at, func(from int) {
			for i := from; i < len(dst); i++ {
				if valid[i>>3]&(1<<(uint(i)&7)) == 0 {
					continue
				}
				at = i
				if v, err := fn(a[i]); err != nil {
					out.SetError(i, err)
				} else {
					dst[i] = v
				}
			}
		})
		return nil
	})
}

// MapInt64x2 runs fn on every row of a (BIGINT, BIGINT) -> BIGINT function;
// rows with a NULL argument are NULL without calling fn.
func MapInt64x2(ptr, n uint32, fn func(a, b int64) (int64, error)) uint64 {
	return Call(ptr, n, BigInt, func(in *Batch, out *Result) error {
		if err := in.CheckArgs(BigInt, BigInt); err != nil {
			return err
		}
		a, b := in.cols[0].int64s(in.rows), in.cols[1].int64s(in.rows)
		dst, valid := out.int64s(), out.validFromArgs(in)
		var at int
		guarded(out, in.rows, &at, func(from int) {
			for i := from; i < len(dst); i++ {
				if valid[i>>3]&(1<<(uint(i)&7)) == 0 {
					continue
				}
				at = i
				if v, err := fn(a[i], b[i]); err != nil {
					out.SetError(i, err)
				} else {
					dst[i] = v
				}
			}
		})
		return nil
	})
}

// MapInt64x3 runs fn on every row of a (BIGINT, BIGINT, BIGINT) -> BIGINT
// function; rows with a NULL argument are NULL without calling fn.
func MapInt64x3(ptr, n uint32, fn func(a, b, c int64) (int64, error)) uint64 {
	return Call(ptr, n, BigInt, func(in *Batch, out *Result) error {
		if err := in.CheckArgs(BigInt, BigInt, BigInt); err != nil {
			return err
		}
		a, b, c := in.cols[0].int64s(in.rows), in.cols[1].int64s(in.rows), in.cols[2].int64s(in.rows)
		dst, valid := out.int64s(), out.validFromArgs(in)
		var at int
		guarded(out, in.rows, &at, func(from int) {
			for i := from; i < len(dst); i++ {
				if valid[i>>3]&(1<<(uint(i)&7)) == 0 {
					continue
				}
				at = i
				if v, err := fn(a[i], b[i], c[i]); err != nil {
					out.SetError(i, err)
				} else {
					dst[i] = v
				}
			}
		})
		return nil
	})
}
