package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/udfhost/udfhost/internal/atomicfile"
)

// dirStore keeps one JSON file per function under dir/<env>/<name>.json,
// written atomically: one host's records on its own disk.
type dirStore struct{ dir string }

// OpenRegistry loads every function stored under dir, a directory only
// this host writes.
func OpenRegistry(dir string) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open function registry: %w", err)
	}
	return newRegistry(context.Background(), dirStore{dir: dir})
}

func (d dirStore) loadAll(context.Context) ([]stored, error) {
	paths, err := filepath.Glob(filepath.Join(d.dir, "*", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []stored
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load function %s: %w", p, err)
		}
		var f Function
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("load function %s: %w", p, err)
		}
		out = append(out, stored{f: &f})
	}
	return out, nil
}

// create writes f's file. The Registry's map already refused a taken
// name: this directory has no other writer.
func (d dirStore) create(_ context.Context, f *Function, body []byte) (string, error) {
	if err := os.MkdirAll(filepath.Join(d.dir, f.Env), 0o700); err != nil {
		return "", fmt.Errorf("store function %s: %w", f.Name, err)
	}
	if err := atomicfile.WriteFile(d.path(f.Env, f.Name), body, 0o600); err != nil {
		return "", fmt.Errorf("store function %s: %w", f.Name, err)
	}
	return "", nil
}

func (d dirStore) remove(_ context.Context, env, name, _ string) error {
	if err := os.Remove(d.path(env, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete function %s: %w", name, err)
	}
	if err := atomicfile.SyncDir(filepath.Join(d.dir, env)); err != nil {
		return fmt.Errorf("delete function %s: %w", name, err)
	}
	return nil
}

func (d dirStore) path(env, name string) string {
	return filepath.Join(d.dir, env, name+".json")
}
