package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/udfhost/udfhost/internal/s3store"
)

// Bucket is what a shared registry needs of an object store: small
// conditional writes and listings with ETags. *s3store.Store has it.
type Bucket interface {
	PutIfAbsent(ctx context.Context, key string, body []byte) (string, error)
	DeleteIfMatch(ctx context.Context, key, etag string) error
	GetRecord(ctx context.Context, key string, limit int64) ([]byte, string, error)
	List(ctx context.Context, prefix string) ([]s3store.Object, error)
	String() string
}

// bucketPrefix is where function records live in a bucket:
// functions/<env>/<name>.json, the same bytes a directory holds.
const bucketPrefix = "functions/"

// maxRecordBytes bounds a record read from the bucket; a real one is
// well under 4 KiB.
const maxRecordBytes = 64 << 10

// bucketStore keeps the records in a bucket several hosts share. A create
// is If-None-Match: * (two hosts creating one name: one wins, the other
// gets ErrExists); a delete is If-Match on the ETag this host last read.
type bucketStore struct{ b Bucket }

// OpenBucketRegistry loads every function record of the bucket: a host
// that starts, or restarts, serves what all hosts created. Registry.Sync
// then brings in what they change.
func OpenBucketRegistry(ctx context.Context, b Bucket) (*Registry, error) {
	return newRegistry(ctx, bucketStore{b: b})
}

func bucketKey(env, name string) string { return bucketPrefix + env + "/" + name + ".json" }

// unavailable wraps a store failure so the edge answers UNAVAILABLE, with
// the store's name in the message.
func (s bucketStore) unavailable(doing string, err error) error {
	return fmt.Errorf("%w: %s: function store %s: %v", ErrUnavailable, doing, s.b, err)
}

func (s bucketStore) loadAll(ctx context.Context) ([]stored, error) {
	objs, err := s.b.List(ctx, bucketPrefix)
	if err != nil {
		return nil, s.unavailable("list functions", err)
	}
	var out []stored
	for _, o := range objs {
		st, err := s.load(ctx, o.Key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// load reads the record at key and checks that it is the function its
// key names.
func (s bucketStore) load(ctx context.Context, key string) (stored, error) {
	body, etag, err := s.b.GetRecord(ctx, key, maxRecordBytes)
	if errors.Is(err, s3store.ErrNotFound) {
		return stored{}, fmt.Errorf("%w: record %s", ErrNotFound, key)
	}
	if err != nil {
		return stored{}, s.unavailable("load function", err)
	}
	var f Function
	if err := json.Unmarshal(body, &f); err != nil {
		return stored{}, fmt.Errorf("load function %s from %s: %w", key, s.b, err)
	}
	if bucketKey(f.Env, f.Name) != key || checkNames(f.Env, f.Name) != nil {
		return stored{}, fmt.Errorf("load function %s from %s: the record names %q in environment %q", key, s.b, f.Name, f.Env)
	}
	return stored{f: &f, tag: etag}, nil
}

func (s bucketStore) create(ctx context.Context, f *Function, body []byte) (string, error) {
	etag, err := s.b.PutIfAbsent(ctx, bucketKey(f.Env, f.Name), body)
	if errors.Is(err, s3store.ErrExists) {
		return "", fmt.Errorf("%w: %s in environment %s (created by another host)", ErrExists, f.Name, f.Env)
	}
	if err != nil {
		return "", s.unavailable("store function "+f.Name, err)
	}
	return etag, nil
}

func (s bucketStore) remove(ctx context.Context, env, name, tag string) error {
	err := s.b.DeleteIfMatch(ctx, bucketKey(env, name), tag)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, s3store.ErrNotFound):
		return fmt.Errorf("%w: %q in environment %q (deleted by another host)", ErrNotFound, name, env)
	case errors.Is(err, s3store.ErrPreconditionFailed):
		return fmt.Errorf("%w: %q in environment %q was replaced since this host read it; look it up again", ErrChanged, name, env)
	}
	return s.unavailable("delete function "+name, err)
}

// list is the bucket's records, key -> ETag.
func (s bucketStore) list(ctx context.Context) (map[string]string, error) {
	objs, err := s.b.List(ctx, bucketPrefix)
	if err != nil {
		return nil, s.unavailable("list functions", err)
	}
	out := make(map[string]string, len(objs))
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".json") {
			out[o.Key] = o.ETag
		}
	}
	return out, nil
}
