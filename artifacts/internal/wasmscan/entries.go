package wasmscan

import (
	"errors"
	"fmt"
)

// The entries of sections that are more than a few numbers, read as
// wazero reads them.

// importEntry reads an import; for a function import it also returns its
// type index.
func (r *reader) importEntry() (Import, uint32, error) {
	mod, err := r.name()
	if err != nil {
		return Import{}, 0, fmt.Errorf("module name: %w", err)
	}
	name, err := r.name()
	if err != nil {
		return Import{}, 0, fmt.Errorf("name: %w", err)
	}
	kind, err := r.byte()
	if err != nil {
		return Import{}, 0, err
	}
	imp := Import{Module: mod, Name: name, Kind: ExternKind(kind)}
	var typeIdx uint32
	switch imp.Kind {
	case ExternFunc:
		typeIdx, err = r.u32()
	case ExternTable:
		_, err = r.tableType()
	case ExternMemory:
		_, err = r.limits()
	case ExternGlobal:
		if err = r.valType(); err == nil {
			_, err = r.byte() // mutability
		}
	case ExternTag:
		if _, err = r.byte(); err == nil {
			_, err = r.u32()
		}
	default:
		err = fmt.Errorf("unknown import kind 0x%02x", kind)
	}
	if err != nil {
		return Import{}, 0, fmt.Errorf("%s: %w", QuoteName(mod+"."+name), err)
	}
	return imp, typeIdx, nil
}

// tableType reads a table type as wazero does, including the 0x40 0x00
// prefix of a table with an initializer expression.
func (r *reader) tableType() (tableLimits, error) {
	b, err := r.byte()
	if err != nil {
		return tableLimits{}, err
	}
	hasInit := false
	if b == 0x40 {
		if z, err := r.byte(); err != nil || z != 0 {
			return tableLimits{}, errors.New("bad table initializer prefix")
		}
		hasInit = true
	} else {
		r.pos--
	}
	if err := r.valType(); err != nil {
		return tableLimits{}, err
	}
	l, err := r.limits()
	if err == nil && hasInit {
		err = r.constExpr()
	}
	return l, err
}

// constExpr reads a constant expression up to and including its end.
func (r *reader) constExpr() error {
	for {
		op, err := r.byte()
		if err != nil {
			return fmt.Errorf("constant expression: %w", err)
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41: // i32.const
			err = r.skipLEB(5)
		case 0x42: // i64.const
			err = r.skipLEB(10)
		case 0x43: // f32.const
			_, err = r.bytes(4)
		case 0x44: // f64.const
			_, err = r.bytes(8)
		case 0x23, 0xd2: // global.get, ref.func
			_, err = r.u32()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const arithmetic
		case 0xd0: // ref.null
			var t byte
			if t, err = r.byte(); err == nil && t != 0x70 && t != 0x6f && t != 0x69 {
				r.pos--
				_, err = r.u32()
			}
		case 0xfd: // v128.const
			var sub byte
			if sub, err = r.byte(); err == nil {
				if sub != 0x0c {
					return fmt.Errorf("constant expression: vector opcode 0x%02x", sub)
				}
				_, err = r.bytes(16)
			}
		default:
			return fmt.Errorf("constant expression: opcode 0x%02x not allowed", op)
		}
		if err != nil {
			return fmt.Errorf("constant expression: %w", err)
		}
	}
}

// elementSegment reads an element segment and returns how many elements it
// has.
func (r *reader) elementSegment() (uint32, error) {
	prefix, err := r.u32()
	if err != nil {
		return 0, err
	}
	var n uint32
	step := func(fs ...func() error) error {
		for _, f := range fs {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	}
	kindByte := func() error { _, err := r.byte(); return err }
	tableIdx := func() error { _, err := r.u32(); return err }
	funcIdxs := func() error {
		if n, err = r.count(maxElements, "elements"); err != nil {
			return err
		}
		return r.u32s(int(n))
	}
	exprs := func() error {
		if n, err = r.count(maxElements, "elements"); err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if err := r.constExpr(); err != nil {
				return err
			}
		}
		return nil
	}
	switch prefix {
	case 0:
		err = step(r.constExpr, funcIdxs)
	case 1, 3:
		err = step(kindByte, funcIdxs)
	case 2:
		err = step(tableIdx, r.constExpr, kindByte, funcIdxs)
	case 4:
		err = step(r.constExpr, exprs)
	case 5, 7:
		err = step(r.valType, exprs)
	case 6:
		err = step(tableIdx, r.constExpr, r.valType, exprs)
	default:
		err = fmt.Errorf("unknown element segment prefix %d", prefix)
	}
	return n, err
}

func (r *reader) dataSegment() error {
	prefix, err := r.u32()
	if err != nil {
		return err
	}
	switch prefix {
	case 0:
		err = r.constExpr()
	case 1:
	case 2:
		if _, err = r.u32(); err == nil {
			err = r.constExpr()
		}
	default:
		return fmt.Errorf("unknown data segment prefix %d", prefix)
	}
	if err != nil {
		return err
	}
	n, err := r.u32()
	if err != nil {
		return err
	}
	if _, err := r.bytes(int(n)); err != nil {
		return fmt.Errorf("%d bytes of data run past the end of the section", n)
	}
	return nil
}
