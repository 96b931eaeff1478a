package functions

import (
	"context"
	"errors"
	"strings"
)

// Changes is what a Sync found other hosts changed: functions that
// appeared and functions that went away (a record replaced under the same
// name is both: the old one removed, the new one added).
type Changes struct {
	Added, Removed []*Function
}

// syncer is a recordStore other hosts write too.
type syncer interface {
	// list is every record's key and tag.
	list(ctx context.Context) (map[string]string, error)
	load(ctx context.Context, key string) (stored, error)
}

// Sync brings the registry up to date with its store: it lists the
// records and loads only those whose ETag changed since the last sync,
// and returns what was added and removed, so that the caller can start
// or stop what depends on them. A store failure changes nothing (the
// functions known keep being served) and is returned; a record that
// cannot be read is skipped and reported, and the others are applied.
// With a directory only this host writes, Sync does nothing.
func (r *Registry) Sync(ctx context.Context) (Changes, error) {
	sy, ok := r.st.(syncer)
	if !ok {
		return Changes{}, nil
	}
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	listing, err := sy.list(ctx)
	if err != nil {
		return Changes{}, err
	}
	r.mu.RLock()
	known := make(map[string]string, len(r.fns))
	for k, s := range r.fns {
		known[k] = s.tag
	}
	r.mu.RUnlock()

	// Load what is new or changed, outside the lock: calls keep reading
	// the registry meanwhile.
	fresh := map[string]stored{}
	kept := map[string]bool{} // listed, but unreadable: keep what we have
	var errs []error
	for key, etag := range listing {
		name, ok := registryKey(key)
		if !ok {
			continue
		}
		if tag, ok := known[name]; ok && tag == etag {
			continue
		}
		st, err := sy.load(ctx, key)
		if errors.Is(err, ErrNotFound) {
			delete(listing, key) // deleted since the listing
			continue
		}
		if err != nil {
			errs = append(errs, err)
			kept[name] = true
			continue
		}
		fresh[name] = st
	}

	var ch Changes
	r.mu.Lock()
	for name, cur := range r.fns {
		if kept[name] {
			continue
		}
		if _, listed := listing[bucketPrefix+name+".json"]; !listed {
			ch.Removed = append(ch.Removed, cur.f)
			delete(r.fns, name)
		} else if st, ok := fresh[name]; ok {
			ch.Removed = append(ch.Removed, cur.f)
			ch.Added = append(ch.Added, st.f)
			r.fns[name] = st
		}
	}
	for name, st := range fresh {
		if _, ok := r.fns[name]; !ok {
			ch.Added = append(ch.Added, st.f)
			r.fns[name] = st
		}
	}
	r.mu.Unlock()
	sortFunctions(ch.Added)
	sortFunctions(ch.Removed)
	return ch, errors.Join(errs...)
}

// registryKey turns a bucket key functions/<env>/<name>.json into the
// registry's <env>/<name>.
func registryKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, bucketPrefix)
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, ".json")
	if !ok {
		return "", false
	}
	env, name, ok := strings.Cut(rest, "/")
	if !ok || checkNames(env, name) != nil {
		return "", false
	}
	return rest, true
}
