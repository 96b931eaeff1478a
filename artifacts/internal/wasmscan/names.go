package wasmscan

import (
	"errors"
	"fmt"
)

// customSection reads a custom section: its name, then contents that
// only the "name" section's are read for (wazero skips the others).
func (m *moduleScan) customSection(r *reader) error {
	name, err := r.name()
	if err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if name != "name" {
		r.pos = len(r.buf) // opaque; wazero skips it
		return nil
	}
	if m.sawNameField {
		return errors.New(`second "name" section`)
	}
	m.sawNameField = true
	return m.nameSection(r)
}

// nameSection checks the "name" custom section: wazero decodes its module
// name, function names and local names (and sizes allocations from their
// counts); other subsections it skips by size.
func (m *moduleScan) nameSection(r *reader) error {
	for r.pos < len(r.buf) {
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return err
		}
		body, err := r.bytes(int(size))
		if err != nil {
			return fmt.Errorf("subsection %d: declared size %d runs past the end", id, size)
		}
		sr := &reader{buf: body}
		switch id {
		case 0: // module name
			if _, err := sr.name(); err != nil {
				return fmt.Errorf("module name: %w", err)
			}
		case 1: // function names
			if err := sr.vector(maxFunctions, "function names", func(i uint32) error {
				if _, err := sr.u32(); err != nil {
					return err
				}
				if _, err := sr.name(); err != nil {
					return fmt.Errorf("function name %d: %w", i, err)
				}
				return nil
			}); err != nil {
				return err
			}
		case 2: // local names
			if err := sr.vector(maxFunctions, "local-name entries", func(uint32) error {
				m.localNames++
				if _, err := sr.u32(); err != nil {
					return err
				}
				return sr.vector(maxLocals, "local names", func(uint32) error {
					if _, err := sr.u32(); err != nil {
						return err
					}
					if _, err := sr.name(); err != nil {
						return fmt.Errorf("local name: %w", err)
					}
					return nil
				})
			}); err != nil {
				return err
			}
		default:
			continue
		}
		// wazero reads these subsections without their size; a size that
		// disagrees with the contents would make it misread what follows.
		if sr.pos != len(sr.buf) {
			return fmt.Errorf("name subsection %d: size %d disagrees with its contents (%d bytes)", id, size, sr.pos)
		}
	}
	return nil
}
