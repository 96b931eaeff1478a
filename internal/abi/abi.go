// Package abi implements the host side of the batch ABI v1 described in
// docs/ABI.md: it lays request batches out as input regions, parses input
// regions in the worker, validates and compacts the output regions guests
// leave in their memory, builds output regions for direct-ABI functions, and
// decodes output regions back into proto columns.
//
// Everything here treats its input bytes as untrusted: parsers check every
// offset, length and count before touching a buffer and never panic on
// malformed data. Encoders append to caller-owned slices so that steady-state
// batches do not allocate.
package abi

import (
	"encoding/binary"
	"errors"

	"github.com/udfhost/udfhost/internal/udf"
)

// Version is the batch ABI version this package implements; a module's
// udfhost_abi_version export must return it.
const Version = 1

// InputMagic and OutputMagic are the first four bytes ("UDFB", "UDFR") of an
// input and an output region, as little-endian u32.
const (
	InputMagic  = 0x42464455
	OutputMagic = 0x52464455
)

// MaxMessageLen is the number of bytes of a row error message that are kept;
// longer messages are truncated.
const MaxMessageLen = 1024

const (
	inHeaderSize  = 16
	inColSize     = 32
	outHeaderSize = 48
	errEntrySize  = 12
)

// ErrBadOutput is wrapped by every error that reports an inconsistent output
// region; the worker reports it as a sandbox violation.
var ErrBadOutput = errors.New("abi: bad output region")

// ErrBadInput is wrapped by every error ParseInput returns.
var ErrBadInput = errors.New("abi: bad input region")

// ErrBatchFailed is returned by CopyOutput when the guest returned 0, meaning
// it could not process the batch at all.
var ErrBatchFailed = errors.New("abi: guest could not process the batch (returned 0)")

var le = binary.LittleEndian

// fixedWidth returns the byte width of a fixed-width type, 0 for BOOLEAN
// (bit-packed) and -1 for VARCHAR, BYTES and invalid types.
func fixedWidth(t udf.Type) int {
	if w := t.Width(); w > 0 {
		return w
	}
	if t == udf.Boolean {
		return 0
	}
	return -1
}

// bitmapLen is ceil(rows/8).
func bitmapLen(rows int) int { return (rows + 7) >> 3 }

// valuesLen is the exact size of the values buffer of a fixed-width column.
func valuesLen(t udf.Type, rows int) int {
	if w := fixedWidth(t); w > 0 {
		return w * rows
	}
	return bitmapLen(rows)
}

func align8(n int) int { return (n + 7) &^ 7 }

// bitSet reports whether bit i of an LSB-first bitmap is 1.
func bitSet(b []byte, i int) bool { return b[i>>3]&(1<<(uint(i)&7)) != 0 }

// maskTail clears the bits of the last byte of a bitmap beyond rows.
func maskTail(b []byte, rows int) {
	if r := rows & 7; r != 0 && len(b) > 0 {
		b[len(b)-1] &= byte(1)<<r - 1
	}
}
