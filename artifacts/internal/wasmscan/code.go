package wasmscan

import "fmt"

// code reads one entry of the code section: a function body's size, its
// locals and its instructions, and applies the limits on what compiling
// it costs.
func (m *moduleScan) code(r *reader) error {
	size, err := r.u32()
	if err != nil {
		return err
	}
	if size > maxFunctionSize {
		return fmt.Errorf("%d bytes, more than %d", size, maxFunctionSize)
	}
	body, err := r.bytes(int(size))
	if err != nil {
		return fmt.Errorf("declared size %d runs past the end of the section", size)
	}
	br := &reader{buf: body}
	var locals uint64
	if err := br.vector(maxLocals, "local declarations", func(uint32) error {
		n, err := br.u32()
		if err != nil {
			return err
		}
		if locals += uint64(n); locals > maxLocals {
			return fmt.Errorf("more than %d locals", maxLocals)
		}
		return br.valType()
	}); err != nil {
		return err
	}
	if m.totalLocals += locals; m.totalLocals > maxTotalLocals {
		return fmt.Errorf("more than %d locals in the module", maxTotalLocals)
	}
	st, err := br.instrs()
	if err != nil {
		return err
	}
	return m.addBody(st)
}

// addBody applies the limits on what compiling a function body costs.
func (m *moduleScan) addBody(st bodyStats) error {
	m.bodies++
	work := st.work()
	if work > maxFunctionWork {
		return fmt.Errorf("control flow too costly to compile: %d basic blocks chained up to %d deep, %d locals (estimated compiler work %d, more than %d)",
			st.blocks, st.maxDist, st.locals, work, maxFunctionWork)
	}
	if m.work += work; m.work > m.maxWork {
		return fmt.Errorf("control flow too costly to compile: the first %d functions' estimated compiler work is %d, more than %d for a module of this size",
			m.bodies, m.work, m.maxWork)
	}
	for _, t := range st.grown {
		if int64(t) < int64(len(m.tables)) {
			m.tables[t].grown = true
		}
	}
	return nil
}

// checkTableGrowth bounds what tables may reach: a table that table.grow
// grows must declare a maximum (wazero grows a table up to its maximum, or
// 2^32-1 elements without one), and the tables' sizes so bounded must stay
// within maxTableElements.
func (m *moduleScan) checkTableGrowth() error {
	var total uint64
	for i, t := range m.tables {
		if !t.grown {
			total += uint64(t.min)
			continue
		}
		if !t.hasMax {
			return fmt.Errorf("table %d: grown by table.grow but declares no maximum size (at most %d elements allowed)", i, maxTableElements)
		}
		if total += uint64(t.max); total > maxTableElements {
			return fmt.Errorf("table %d: grown by table.grow up to its maximum of %d elements, which brings the tables to %d, more than %d (every instance allocates 8 bytes an element)", i, t.max, total, maxTableElements)
		}
	}
	return nil
}
