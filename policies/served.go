package policies

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/udfhost/udfhost/internal/atomicfile"
)

// ServedFile is the file of the data dir that remembers every environment
// ever served as private, so that no later policy, edited or not, can
// make one public: its resources were created as private and must stay
// out of the public network's reach.
const ServedFile = "private-environments.json"

// served is ServedFile's content.
type served struct {
	// Private lists the environments ever served as private, sorted.
	Private []string `json:"private_environments"`
}

// CheckServed refuses p if it makes public an environment the data dir
// remembers as served private. Dropping such an environment is allowed
// (its resources then belong to no environment of the policy); listing it
// again, it must be private. The error points at the visibility in p's
// file: FILE:LINE:COL. Serve calls it at start and on every reload,
// before p is applied, then RecordServed.
func CheckServed(dataDir string, p *Policy) error {
	rec, err := readServed(dataDir)
	if err != nil {
		return err
	}
	for _, name := range rec.Private {
		env, ok := p.Environments[name]
		if !ok || env.Visibility == Private {
			continue
		}
		msg := fmt.Sprintf("environment %q was served as private (%s remembers it); a private environment can never be made public again",
			name, filepath.Join(dataDir, ServedFile))
		if w, ok := p.visibilityAt[name]; ok {
			return &Error{File: p.File, Line: w.line, Col: w.col, Msg: w.path + ": " + msg}
		}
		return &Error{Msg: "policy: " + msg}
	}
	return nil
}

// RecordServed adds p's private environments to the data dir's record,
// written atomically; it writes nothing when they are all there already.
func RecordServed(dataDir string, p *Policy) error {
	rec, err := readServed(dataDir)
	if err != nil {
		return err
	}
	n := len(rec.Private)
	for name, env := range p.Environments {
		if env.Visibility == Private && !slices.Contains(rec.Private, name) {
			rec.Private = append(rec.Private, name)
		}
	}
	if len(rec.Private) == n {
		return nil
	}
	slices.Sort(rec.Private)
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("record private environments: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dataDir, ServedFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("record private environments: %w", err)
	}
	return nil
}

// readServed reads the record; a missing one is empty. A record that
// cannot be read refuses the start: ignoring it would let a private
// environment turn public.
func readServed(dataDir string) (served, error) {
	var rec served
	path := filepath.Join(dataDir, ServedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, fmt.Errorf("read the record of private environments: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("read the record of private environments %s: %w; it must not be lost: restore it, do not delete it", path, err)
	}
	return rec, nil
}
