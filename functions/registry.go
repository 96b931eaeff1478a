package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

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
	// ErrChanged is a delete that lost a race: another host replaced the
	// function's record since this one read it.
	ErrChanged = errors.New("function changed by another host")
	// ErrUnavailable wraps a failure of the store the records live in
	// (the bucket unreachable); the message names the store.
	ErrUnavailable = errors.New("function store unavailable")
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

// recordStore is where a Registry keeps its records: a directory
// (dirStore) or a bucket shared by several hosts (bucketStore). Each
// record carries a version tag (the bucket's ETag; "" for a directory),
// which a removal must still match.
type recordStore interface {
	// loadAll returns every stored function with its tag.
	loadAll(ctx context.Context) ([]stored, error)
	// create stores a new record: ErrExists if the name is taken there.
	create(ctx context.Context, f *Function, body []byte) (tag string, err error)
	// remove deletes a record if its tag is still tag: ErrChanged if not,
	// ErrNotFound if it is gone.
	remove(ctx context.Context, env, name, tag string) error
}

// stored is one record of a recordStore.
type stored struct {
	f   *Function
	tag string
}

// Registry holds the functions of one store in memory and writes every
// change through to the store. With a shared store, Sync brings in what
// other hosts changed.
type Registry struct {
	st recordStore
	// syncMu orders Sync against this host's own writes: a create or
	// delete is never half-seen by a listing taken while it was running.
	syncMu sync.Mutex
	mu     sync.RWMutex
	fns    map[string]stored // env + "/" + name
	// reserved holds names being created: taken, not yet visible.
	reserved map[string]bool
}

func newRegistry(ctx context.Context, st recordStore) (*Registry, error) {
	all, err := st.loadAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("open function registry: %w", err)
	}
	r := &Registry{st: st, fns: map[string]stored{}, reserved: map[string]bool{}}
	for _, s := range all {
		r.fns[s.f.Env+"/"+s.f.Name] = s
	}
	return r, nil
}

// encode is a record's stored form, the same in a directory and a bucket.
func encode(f *Function) ([]byte, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("store function %s: %w", f.Name, err)
	}
	return b, nil
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
func (r *Registry) Create(ctx context.Context, f *Function) error {
	commit, _, err := r.Reserve(f)
	if err != nil {
		return err
	}
	return commit(ctx)
}

// Reserve takes f's name in its environment without making f visible:
// commit stores f (and frees the name if storing fails), cancel frees the
// name. Exactly one of them must be called. A creation that has more to
// do before it is final (start a worker, audit) reserves first, so that
// nothing it does is for a name another caller of this host gets. In a
// shared store the name is only won by commit: another host may have
// created it meanwhile (ErrExists).
func (r *Registry) Reserve(f *Function) (commit func(context.Context) error, cancel func(), err error) {
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
	commit = func(ctx context.Context) error {
		defer release()
		body, err := encode(f)
		if err != nil {
			return err
		}
		r.syncMu.Lock()
		defer r.syncMu.Unlock()
		tag, err := r.st.create(ctx, f, body)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.fns[key] = stored{f: f, tag: tag}
		r.mu.Unlock()
		return nil
	}
	return commit, release, nil
}

// Get returns the function name in env.
func (r *Registry) Get(env, name string) (*Function, error) {
	if err := checkNames(env, name); err != nil {
		return nil, err
	}
	r.mu.RLock()
	s, ok := r.fns[env+"/"+name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q in environment %q", ErrNotFound, name, env)
	}
	return s.f, nil
}

// List returns the functions of env ("" for all), by environment and name.
func (r *Registry) List(env string) []*Function {
	r.mu.RLock()
	var out []*Function
	for _, s := range r.fns {
		if env == "" || s.f.Env == env {
			out = append(out, s.f)
		}
	}
	r.mu.RUnlock()
	sortFunctions(out)
	return out
}

func sortFunctions(fs []*Function) {
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].Env != fs[j].Env {
			return fs[i].Env < fs[j].Env
		}
		return fs[i].Name < fs[j].Name
	})
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

// Delete removes the function name in env and returns it. In a shared
// store the record must still be the one this host read: ErrChanged if
// another host replaced it; one another host deleted is ErrNotFound (and
// gone here too).
func (r *Registry) Delete(ctx context.Context, env, name string) (*Function, error) {
	if err := checkNames(env, name); err != nil {
		return nil, err
	}
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	key := env + "/" + name
	r.mu.RLock()
	s, ok := r.fns[key]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q in environment %q", ErrNotFound, name, env)
	}
	err := r.st.remove(ctx, env, name, s.tag)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	r.mu.Lock()
	delete(r.fns, key)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.f, nil
}
