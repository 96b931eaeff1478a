package loadgen

import (
	"encoding/binary"
	"math"
	"math/rand/v2"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// GenBatch returns a batch of rows random values, one column per type, in
// the Arrow layout the server validates. Integers are small (|v| <= 1000 for
// INT, <= 1e6 for BIGINT) so arithmetic UDFs such as a*b+c stay in range;
// VARCHAR values are valueSize lower-case ASCII letters and BYTES values
// valueSize random bytes. Each row of each column is NULL with probability
// nulls; with nulls == 0 the validity bitmap is left empty (all valid), as
// most callers send it.
func GenBatch(types []udfhostv1.SqlType, rows int, valueSize int, nulls float64, rng *rand.Rand) *udfhostv1.Batch {
	b := &udfhostv1.Batch{Rows: uint32(rows), Columns: make([]*udfhostv1.Column, len(types))}
	for i, t := range types {
		b.Columns[i] = genColumn(t, rows, valueSize, nulls, rng)
	}
	return b
}

func genColumn(t udfhostv1.SqlType, rows, valueSize int, nulls float64, rng *rand.Rand) *udfhostv1.Column {
	c := &udfhostv1.Column{Type: t}
	valid := func(int) bool { return true }
	if nulls > 0 {
		// Bits past rows stay 0: Arrow leaves them undefined, but zero
		// padding keeps batches byte-for-byte reproducible from a seed.
		c.Validity = make([]byte, (rows+7)/8)
		for i := range rows {
			if rng.Float64() >= nulls {
				c.Validity[i>>3] |= 1 << (uint(i) & 7)
			}
		}
		valid = func(i int) bool { return c.Validity[i>>3]&(1<<(uint(i)&7)) != 0 }
	}
	le := binary.LittleEndian
	switch t {
	case udfhostv1.SqlType_TYPE_INT:
		c.Values = make([]byte, 4*rows)
		for i := range rows {
			le.PutUint32(c.Values[4*i:], uint32(int32(rng.IntN(2001)-1000)))
		}
	case udfhostv1.SqlType_TYPE_BIGINT:
		c.Values = make([]byte, 8*rows)
		for i := range rows {
			le.PutUint64(c.Values[8*i:], uint64(rng.Int64N(2_000_001)-1_000_000))
		}
	case udfhostv1.SqlType_TYPE_FLOAT:
		c.Values = make([]byte, 4*rows)
		for i := range rows {
			le.PutUint32(c.Values[4*i:], math.Float32bits(float32(rng.Float64()*2000-1000)))
		}
	case udfhostv1.SqlType_TYPE_DOUBLE:
		c.Values = make([]byte, 8*rows)
		for i := range rows {
			le.PutUint64(c.Values[8*i:], math.Float64bits(rng.Float64()*2000-1000))
		}
	case udfhostv1.SqlType_TYPE_BOOLEAN:
		c.Values = make([]byte, (rows+7)/8)
		for i := range rows {
			if rng.IntN(2) == 1 {
				c.Values[i>>3] |= 1 << (uint(i) & 7)
			}
		}
	case udfhostv1.SqlType_TYPE_VARCHAR, udfhostv1.SqlType_TYPE_BYTES:
		// NULL rows are empty, as Arrow writers produce them, so the values
		// buffer holds only what is read.
		c.Offsets = make([]byte, 4*(rows+1))
		n := 0
		for i := range rows {
			if valid(i) {
				n += valueSize
			}
			le.PutUint32(c.Offsets[4*(i+1):], uint32(n))
		}
		c.Values = make([]byte, n)
		if t == udfhostv1.SqlType_TYPE_VARCHAR {
			for i := range c.Values {
				c.Values[i] = byte('a' + rng.IntN(26))
			}
		} else {
			for i := 0; i < n; i += 8 {
				var w [8]byte
				le.PutUint64(w[:], rng.Uint64())
				copy(c.Values[i:], w[:])
			}
		}
	}
	return c
}
