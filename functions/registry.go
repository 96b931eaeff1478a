package functions

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/udfhost/udfhost/internal/atomicfile"
	"github.com/udfhost/udfhost/internal/names"
	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/policies"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("function not found")
	ErrExists   = errors.New("function already exists")
	// ErrName is wrapped by a refused function or environment name (the
	// message, from package names, quotes at most a short prefix of it).
	ErrName = names.ErrInvalid
)

// Function is a callable binding of an artifact's export.
type Function struct {
	Name       string     `json:"name"`
	Org        string     `json:"org"`
	Env        string     `json:"env"`
	Pool       string     `json:"pool"`
	ArtifactID string     `json:"artifact_id"`
	Digest     string     `json:"digest"`
	Export     string     `json:"export"`
	Args       []udf.Type `json:"args"`
	Result     udf.Type   `json:"result"`
	ABI        udf.ABI    `json:"abi"`
	CreatedAt  time.Time  `json:"created_at"`
	// Visibility is the visibility its environment had when it was
	// created; "" (records written before it existed) is public.
	Visibility policies.Visibility `json:"visibility,omitempty"`
	// Connections name the connections of Env (policy file) the function
	// may use through the egress broker, in binding order; none: no
	// network at all. Each is checked again against the current policy
	// on every request.
	Connections []string `json:"connections,omitempty"`
}

// Signature is the function's canonical SQL signature.
func (f *Function) Signature() string { return FormatSignature(f.Args, f.Result) }

// Registry stores functions as one JSON file each under dir/<env>/, written
// atomically, and serves them from memory.
type Registry struct {
	dir string
	mu  sync.RWMutex
	fns map[string]*Function // env + "/" + name
	// reserved holds names being created: taken, not yet visible.
	reserved map[string]bool
}

// OpenRegistry loads every function stored under dir.
func OpenRegistry(dir string) (*Registry, error) {
	r := &Registry{dir: dir, fns: map[string]*Function{}, reserved: map[string]bool{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open function registry: %w", err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*", "*.json"))
	if err != nil {
		return nil, fmt.Errorf("open function registry: %w", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load function %s: %w", p, err)
		}
		var f Function
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("load function %s: %w", p, err)
		}
		r.fns[f.Env+"/"+f.Name] = &f
	}
	return r, nil
}

// checkNames refuses a function or environment name outside the grammar
// (package names) before it is used as a key or a file name.
func checkNames(env, name string) error {
	if err := names.Env.Check(env); err != nil {
		return err
	}
	return names.Function.Check(name)
}

// Create stores f; the name must be new in its environment.
func (r *Registry) Create(f *Function) error {
	commit, _, err := r.Reserve(f)
	if err != nil {
		return err
	}
	return commit()
}

// Reserve takes f's name in its environment without making f visible:
// commit stores f (and frees the name if storing fails), cancel frees the
// name. Exactly one of them must be called. A creation that has more to
// do before it is final (start a worker, audit) reserves first, so that
// nothing it does is for a name another caller gets.
func (r *Registry) Reserve(f *Function) (commit func() error, cancel func(), err error) {
	if err := checkNames(f.Env, f.Name); err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	key := f.Env + "/" + f.Name
	if _, ok := r.fns[key]; ok || r.reserved[key] {
		return nil, nil, fmt.Errorf("%w: %s in environment %s", ErrExists, f.Name, f.Env)
	}
	r.reserved[key] = true
	release := func() {
		r.mu.Lock()
		delete(r.reserved, key)
		r.mu.Unlock()
	}
	commit = func() error {
		defer release()
		if err := r.store(f); err != nil {
			return err
		}
		r.mu.Lock()
		r.fns[key] = f
		r.mu.Unlock()
		return nil
	}
	return commit, release, nil
}

// store writes f's file.
func (r *Registry) store(f *Function) error {
	if err := os.MkdirAll(filepath.Join(r.dir, f.Env), 0o700); err != nil {
		return fmt.Errorf("store function %s: %w", f.Name, err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("store function %s: %w", f.Name, err)
	}
	if err := atomicfile.WriteFile(r.path(f.Env, f.Name), b, 0o600); err != nil {
		return fmt.Errorf("store function %s: %w", f.Name, err)
	}
	return nil
}

func (r *Registry) path(env, name string) string {
	return filepath.Join(r.dir, env, name+".json")
}

// Get returns the function name in env.
func (r *Registry) Get(env, name string) (*Function, error) {
	if err := checkNames(env, name); err != nil {
		return nil, err
	}
	r.mu.RLock()
	f, ok := r.fns[env+"/"+name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q in environment %q", ErrNotFound, name, env)
	}
	return f, nil
}

// List returns the functions of env ("" for all), by environment and name.
func (r *Registry) List(env string) []*Function {
	r.mu.RLock()
	var out []*Function
	for _, f := range r.fns {
		if env == "" || f.Env == env {
			out = append(out, f)
		}
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Env != out[j].Env {
			return out[i].Env < out[j].Env
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// UsingArtifact returns the functions bound to artifact id.
func (r *Registry) UsingArtifact(id string) []*Function {
	var out []*Function
	for _, f := range r.List("") {
		if f.ArtifactID == id {
			out = append(out, f)
		}
	}
	return out
}

// Delete removes the function name in env and returns it.
func (r *Registry) Delete(env, name string) (*Function, error) {
	if err := checkNames(env, name); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	key := env + "/" + name
	f, ok := r.fns[key]
	if !ok {
		return nil, fmt.Errorf("%w: %q in environment %q", ErrNotFound, name, env)
	}
	if err := os.Remove(r.path(env, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("delete function %s: %w", name, err)
	}
	if err := atomicfile.SyncDir(filepath.Join(r.dir, env)); err != nil {
		return nil, fmt.Errorf("delete function %s: %w", name, err)
	}
	delete(r.fns, key)
	return f, nil
}
