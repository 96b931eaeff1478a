package abi

import (
	"testing"

	"github.com/udfhost/udfhost/internal/udf"
)

func BenchmarkAppendInputBigint1024(b *testing.B) {
	batch := &Batch{Rows: 1024, Columns: []*Column{sampleColumn(udf.BigInt, 1024, true)}}
	buf := AppendInput(nil, batch)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendInput(buf[:0], batch)
	}
}

func BenchmarkParseInputBigint1024(b *testing.B) {
	batch := &Batch{Rows: 1024, Columns: []*Column{sampleColumn(udf.BigInt, 1024, true)}}
	buf := AppendInput(nil, batch)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseInput(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCopyOutputBigint1024(b *testing.B) {
	mem := make([]byte, 16<<10)
	n := rawFromColumn(sampleColumn(udf.BigInt, 1024, true), 1024).write(mem, 8)
	var dst []byte
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = CopyOutput(dst[:0], mem, 8, n, 1024, udf.BigInt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeOutputBigint1024(b *testing.B) {
	mem := make([]byte, 16<<10)
	n := rawFromColumn(sampleColumn(udf.BigInt, 1024, true), 1024).write(mem, 8)
	out, err := CopyOutput(nil, mem, 8, n, 1024, udf.BigInt)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeOutput(out, 1024, udf.BigInt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOutputBuilderBigint1024(b *testing.B) {
	var ob OutputBuilder
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		ob.Reset(udf.BigInt, 1024)
		for i := range 1024 {
			ob.SetInt64(i, int64(i))
		}
		out = ob.AppendTo(out[:0])
	}
}

// varchar1024 is 1024 16-byte ASCII rows, the upper benchmark's shape.
func varchar1024() *Batch {
	b := newColBuilder(udf.Varchar)
	for range 1024 {
		b.add("abcdefghijklmnop")
	}
	return &Batch{Rows: 1024, Columns: []*Column{b.column()}}
}

// BenchmarkValidateAppendVarchar1024 is the host's per-batch input work for
// a VARCHAR column: ValidateBatch (with its UTF-8 check) and AppendInput.
func BenchmarkValidateAppendVarchar1024(b *testing.B) {
	batch := varchar1024()
	types := []udf.Type{udf.Varchar}
	buf := AppendInput(nil, batch)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateBatch(batch, types); err != nil {
			b.Fatal(err)
		}
		buf = AppendInput(buf[:0], batch)
	}
}

// BenchmarkDecodeOutputVarchar1024 includes the result's UTF-8 check.
func BenchmarkDecodeOutputVarchar1024(b *testing.B) {
	mem := make([]byte, 32<<10)
	n := rawFromColumn(varchar1024().Columns[0], 1024).write(mem, 8)
	out, err := CopyOutput(nil, mem, 8, n, 1024, udf.Varchar)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeOutput(out, 1024, udf.Varchar); err != nil {
			b.Fatal(err)
		}
	}
}
