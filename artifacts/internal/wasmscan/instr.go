package wasmscan

import (
	"errors"
	"fmt"
)

// Opcodes the walk treats specially.
const (
	opUnreachable  = 0x00
	opBlock        = 0x02
	opLoop         = 0x03
	opIf           = 0x04
	opElse         = 0x05
	opThrow        = 0x08
	opThrowRef     = 0x0a
	opEnd          = 0x0b
	opBr           = 0x0c
	opBrIf         = 0x0d
	opBrTable      = 0x0e
	opReturn       = 0x0f
	opReturnCall   = 0x12
	opReturnCallI  = 0x13
	opReturnCallR  = 0x15
	opTryTable     = 0x1f
	opLocalGet     = 0x20
	opBrOnNull     = 0xd5
	opBrOnNonNull  = 0xd6
	opMisc         = 0xfc
	opVector       = 0xfd
	opAtomic       = 0xfe
	miscMemoryFill = 0x0b
	miscTableGrow  = 0x0f
	miscTableFill  = 0x11
)

// instrs walks the instructions of a function body (what follows its
// locals) to its final end, reading every immediate as wazero v1.12's
// validator does, and feeds the control flow to a flowModel. Opcodes wazero
// does not know are errors: a walk that guessed their length could lose its
// place and miss what follows.
func (r *reader) instrs() (bodyStats, error) {
	f := newFlowModel()
	for !f.done() {
		at := r.pos
		op, err := r.byte()
		if err != nil {
			return f.stats, errors.New("instructions run past the end of the body (no final end)")
		}
		if err := r.instr(f, op); err != nil {
			return f.stats, fmt.Errorf("instruction 0x%02x at offset %d: %w", op, at, err)
		}
	}
	if r.left() != 0 {
		return f.stats, fmt.Errorf("%d bytes after the function's final end", r.left())
	}
	return f.stats, nil
}

// instr reads the immediates of one instruction and tells f what it does
// to control flow.
func (r *reader) instr(f *flowModel, op byte) error {
	f.instr()
	switch op {
	case opBlock, opLoop, opIf, opTryTable:
		if err := r.blockType(); err != nil {
			return fmt.Errorf("block type: %w", err)
		}
		if op == opTryTable {
			if err := r.catches(f); err != nil {
				return err
			}
		}
		return f.open(op)
	case opElse:
		return f.els()
	case opEnd:
		return f.end()
	case opBr, opBrIf, opBrOnNull, opBrOnNonNull:
		l, err := r.u32()
		if err != nil {
			return err
		}
		return f.branch(l, op != opBr)
	case opBrTable:
		n, err := r.count(maxBrTableLabels, "br_table labels")
		if err != nil {
			return err
		}
		for i := uint32(0); i <= n; i++ { // the labels, then the default
			l, err := r.u32()
			if err != nil {
				return err
			}
			if err := f.tableBranch(l); err != nil {
				return err
			}
		}
		f.stop()
		return nil
	case opLocalGet:
		idx, err := r.u32()
		f.localGet(idx)
		return err
	case opUnreachable, opReturn, opThrow, opThrowRef, opReturnCall, opReturnCallI, opReturnCallR:
		f.stop()
	case opMisc:
		sub, err := r.u32()
		if err != nil {
			return err
		}
		switch sub {
		case miscMemoryFill, miscTableFill:
			f.fillLoop()
		case miscTableGrow:
			t, err := r.u32()
			f.stats.grown = append(f.stats.grown, t)
			return err
		}
		return r.miscImmediates(sub)
	}
	return r.immediates(op)
}

// maxBrTableLabels bounds one br_table; the bytes left bound it anyway.
const maxBrTableLabels = 1 << 24

// immediates skips the immediates of an opcode other than those instrs
// handles itself.
func (r *reader) immediates(op byte) error {
	switch {
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0a || op == 0x0f || op == 0x1a || op == 0x1b ||
		0x45 <= op && op <= 0xc4 || op == 0xd1 || op == 0xd4:
		return nil // no immediates
	case op == 0x08 || op == 0x10 || op == 0x12 || op == 0x14 || op == 0x15 ||
		0x20 <= op && op <= 0x26 || op == 0x3f || op == 0x40 || op == 0xd2:
		_, err := r.u32() // an index
		return err
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		return r.u32s(2)
	case 0x28 <= op && op <= 0x3e:
		return r.u32s(2) // memarg: align, offset
	case op == 0x41:
		return r.skipLEB(5)
	case op == 0x42:
		return r.skipLEB(10)
	case op == 0x43:
		_, err := r.bytes(4)
		return err
	case op == 0x44:
		_, err := r.bytes(8)
		return err
	case op == 0x1c: // typed select: one value type
		if n, err := r.byte(); err != nil || n != 1 {
			return errors.New("typed select must have one type")
		}
		return r.valType()
	case op == 0xd0: // ref.null: a heap type byte or a type index
		b, err := r.byte()
		if err != nil || b == 0x6f || b == 0x70 || b == 0x69 {
			return err
		}
		r.pos--
		_, err = r.u32()
		return err
	case op == opVector:
		return r.vectorImmediates()
	case op == opAtomic:
		sub, err := r.byte()
		switch {
		case err != nil:
			return err
		case sub == 0x03: // atomic.fence
			_, err = r.byte()
			return err
		case sub <= 0x02 || 0x10 <= sub && sub <= 0x4e:
			return r.u32s(2)
		}
		return fmt.Errorf("unknown atomic opcode 0x%02x", sub)
	}
	return errors.New("unknown opcode")
}

// miscImmediates skips the immediates of 0xfc-prefixed opcode sub.
func (r *reader) miscImmediates(sub uint32) error {
	switch sub {
	case 0, 1, 2, 3, 4, 5, 6, 7: // saturating truncations
		return nil
	case 0x09, 0x0b, 0x0d, 0x0f, 0x10, 0x11: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		return r.u32s(1)
	case 0x08, 0x0a, 0x0c, 0x0e: // memory.init, memory.copy, table.init, table.copy
		return r.u32s(2)
	}
	return fmt.Errorf("unknown opcode 0xfc %d", sub)
}

// vectorImmediates skips a SIMD opcode (one byte, as wazero reads it) and
// its immediates.
func (r *reader) vectorImmediates() error {
	sub, err := r.byte()
	if err != nil {
		return err
	}
	switch {
	case sub <= 0x0b || sub == 0x5c || sub == 0x5d: // loads and store
		return r.u32s(2)
	case 0x54 <= sub && sub <= 0x5b: // lane loads and stores: memarg, lane
		if err := r.u32s(2); err != nil {
			return err
		}
		_, err = r.byte()
		return err
	case sub == 0x0c || sub == 0x0d: // v128.const, i8x16.shuffle
		_, err = r.bytes(16)
		return err
	case 0x15 <= sub && sub <= 0x22: // extract and replace lane
		_, err = r.byte()
		return err
	case vectorNoImmediate[sub/64]&(1<<(sub%64)) != 0:
		return nil
	}
	return fmt.Errorf("unknown opcode 0xfd 0x%02x", sub)
}

// vectorNoImmediate is the set of the other SIMD opcodes wazero knows.
var vectorNoImmediate = func() (set [4]uint64) {
	add := func(lo, hi byte) {
		for b := int(lo); b <= int(hi); b++ {
			set[b/64] |= 1 << (b % 64)
		}
	}
	add(0x0e, 0x14)
	add(0x23, 0x53)
	add(0x5e, 0x99)
	add(0x9b, 0xa1)
	add(0xa3, 0xa4)
	add(0xa7, 0xae)
	add(0xb1, 0xb1)
	add(0xb5, 0xba)
	add(0xbc, 0xc1)
	add(0xc3, 0xc4)
	add(0xc7, 0xce)
	add(0xd1, 0xd1)
	add(0xd5, 0xe1)
	add(0xe3, 0xed)
	add(0xef, 0xff)
	return set
}()

// blockType reads a block type: 0x40, a value type or a type index, as
// one signed 33-bit LEB128; a reference type (0x63, 0x64, that is -29 and
// -28) adds a heap type.
func (r *reader) blockType() error {
	var v int64
	for i := 0; ; i++ {
		if i == 5 {
			return errors.New("LEB128 value longer than 5 bytes")
		}
		b, err := r.byte()
		if err != nil {
			return err
		}
		v |= int64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b&0x40 != 0 {
				v |= -1 << (7 * (i + 1)) // sign-extend
			}
			break
		}
	}
	if v == -29 || v == -28 {
		return r.skipLEB(5)
	}
	return nil
}

// catches reads try_table's catch clauses: each branches to a label of the
// enclosing blocks from a handler block.
func (r *reader) catches(f *flowModel) error {
	n, err := r.count(maxBrTableLabels, "catch clauses")
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		kind, err := r.byte()
		switch {
		case err != nil:
			return err
		case kind <= 0x01: // catch, catch_ref: tag, label
			_, err = r.u32()
		case kind > 0x03: // not catch_all, catch_all_ref (label only)
			return fmt.Errorf("unknown catch kind 0x%02x", kind)
		}
		if err != nil {
			return err
		}
		l, err := r.u32()
		if err != nil {
			return err
		}
		if err := f.tableBranch(l); err != nil {
			return err
		}
	}
	return nil
}
