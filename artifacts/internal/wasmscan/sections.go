package wasmscan

import (
	"fmt"
	"slices"
)

// One function a section, as in wazero's decoder: each reads the
// section's contents from r and applies the limits on its counts. Scan
// checks the section's order and that its contents fill its size.

func (m *moduleScan) typeSection(r *reader) error {
	n, err := r.count(maxTypes, "types")
	if err != nil {
		return err
	}
	m.types = slices.Grow(m.types, int(n)) // n is backed by bytes (count)
	for i := uint32(0); i < n; i++ {
		b, err := r.byte()
		if err != nil {
			return err
		}
		members := uint32(1)
		if b == 0x4e { // rec group (GC proposal)
			if members, err = r.count(maxTypes, "rec group members"); err != nil {
				return err
			}
		} else {
			r.pos--
		}
		m.totalTypes += uint64(members)
		if m.totalTypes > maxTypes {
			return fmt.Errorf("more than %d types", maxTypes)
		}
		for j := uint32(0); j < members; j++ {
			m.types = append(m.types, uint32(m.base+r.pos))
			if _, err := r.funcType(false); err != nil {
				return fmt.Errorf("type %d: %w", i, err)
			}
		}
	}
	return nil
}

func (m *moduleScan) importSection(r *reader) error {
	return r.vector(maxImports, "imports", func(i uint32) error {
		imp, typeIdx, err := r.importEntry()
		if err != nil {
			return fmt.Errorf("import %d: %w", i, err)
		}
		switch imp.Kind {
		case ExternFunc:
			m.funcs++
			m.funcTypes = append(m.funcTypes, typeIdx)
		case ExternTable: // numbered before defined tables; sized by the host
			m.tables = append(m.tables, tableLimits{})
		}
		m.Imports = append(m.Imports, imp)
		return nil
	})
}

func (m *moduleScan) functionSection(r *reader) error {
	n, err := r.count(maxFunctions, "functions")
	if err != nil {
		return err
	}
	if m.funcs += uint64(n); m.funcs > maxFunctions {
		return fmt.Errorf("more than %d functions", maxFunctions)
	}
	m.funcTypes = slices.Grow(m.funcTypes, int(n))
	for i := uint32(0); i < n; i++ {
		t, err := r.u32()
		if err != nil {
			return err
		}
		m.funcTypes = append(m.funcTypes, t)
	}
	return nil
}

func (m *moduleScan) tableSection(r *reader) error {
	var total uint64
	return r.vector(maxTables, "tables", func(i uint32) error {
		t, err := r.tableType()
		if err != nil {
			return fmt.Errorf("table %d: %w", i, err)
		}
		if total += uint64(t.min); total > maxTableElements {
			return fmt.Errorf("table %d: initial size %d elements brings the tables to %d, more than %d (every instance allocates 8 bytes an element)", i, t.min, total, maxTableElements)
		}
		m.tables = append(m.tables, t)
		return nil
	})
}

func (m *moduleScan) memorySection(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	if n > 1 {
		return fmt.Errorf("%d memories, at most 1 allowed", n)
	}
	if n == 1 {
		_, err := r.limits()
		return err
	}
	return nil
}

func (m *moduleScan) tagSection(r *reader) error {
	return r.vector(maxTags, "tags", func(uint32) error {
		if _, err := r.byte(); err != nil { // attribute
			return err
		}
		_, err := r.u32() // type index
		return err
	})
}

func (m *moduleScan) globalSection(r *reader) error {
	return r.vector(maxGlobals, "globals", func(i uint32) error {
		if err := r.valType(); err != nil {
			return fmt.Errorf("global %d: %w", i, err)
		}
		if _, err := r.byte(); err != nil { // mutability
			return err
		}
		if err := r.constExpr(); err != nil {
			return fmt.Errorf("global %d: %w", i, err)
		}
		return nil
	})
}

func (m *moduleScan) exportSection(r *reader) error {
	n, err := r.count(maxExports, "exports")
	if err != nil {
		return err
	}
	m.exports = uint64(n)
	m.Exports = slices.Grow(m.Exports, int(n))
	for i := uint32(0); i < n; i++ {
		name, err := r.name()
		if err != nil {
			return fmt.Errorf("export %d name: %w", i, err)
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		if ExternKind(kind) > ExternTag {
			return fmt.Errorf("export %d: unknown kind 0x%02x", i, kind)
		}
		idx, err := r.u32()
		if err != nil {
			return err
		}
		m.Exports = append(m.Exports, Export{Name: name, Kind: ExternKind(kind), Index: idx})
	}
	return nil
}

// startSection holds the index of the start function.
func (m *moduleScan) startSection(r *reader) error {
	_, err := r.u32()
	return err
}

func (m *moduleScan) elementSection(r *reader) error {
	return r.vector(maxElementSegments, "element segments", func(i uint32) error {
		elems, err := r.elementSegment()
		if err != nil {
			return fmt.Errorf("element segment %d: %w", i, err)
		}
		if m.elements += uint64(elems); m.elements > maxElements {
			return fmt.Errorf("element segment %d: %d elements bring the segments to %d, more than %d (every instance allocates ~40 bytes an element)", i, elems, m.elements, maxElements)
		}
		return nil
	})
}

// dataCountSection holds the number of data segments.
func (m *moduleScan) dataCountSection(r *reader) error {
	_, err := r.u32()
	return err
}

func (m *moduleScan) codeSection(r *reader) error {
	return r.vector(maxFunctions, "function bodies", func(i uint32) error {
		if err := m.code(r); err != nil {
			return fmt.Errorf("function body %d: %w", i, err)
		}
		return nil
	})
}

func (m *moduleScan) dataSection(r *reader) error {
	return r.vector(maxDataSegments, "data segments", func(i uint32) error {
		if err := r.dataSegment(); err != nil {
			return fmt.Errorf("data segment %d: %w", i, err)
		}
		return nil
	})
}
