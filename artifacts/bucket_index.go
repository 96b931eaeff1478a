package artifacts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/s3store"
	"github.com/udfhost/udfhost/presign"
)

// bucketIndex is a host's view of the bucket's artifacts and quarantines.
// It is never modified once published: a change builds a new one under
// BucketStore.mu, so readers take no lock.
type bucketIndex struct {
	metas map[string]indexed[*metaRecord] // by artifact id
	quars map[string]indexed[*Quarantine] // by digest, as the bucket has them
	// quarantined is quars plus the quarantines not yet saved: what
	// Quarantined answers.
	quarantined map[string]*Quarantine
}

// indexed is a record with the ETag it was read at.
type indexed[T any] struct {
	etag string
	v    T
}

// quarantineRecord is the bucket's form of a quarantine.
type quarantineRecord struct {
	Digest string `json:"digest"`
	Quarantine
}

// Sync reads what changed in the bucket since the last Sync: the listing
// of meta/ and quarantine/ gives every record's ETag, and only records
// whose ETag is new are read. Quarantines the bucket could not take when
// they were set are written now.
func (b *BucketStore) Sync(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.idx.Load()
	metas, err := syncRecords(ctx, b, bucketMeta, old.metas, func(id string, m *metaRecord) bool {
		return validArtifactID(id) && m.ID == id
	})
	if err != nil {
		return err
	}
	b.saveUnsaved(ctx)
	byHex := make(map[string]indexed[*Quarantine], len(old.quars)) // the records' names
	for d, q := range old.quars {
		byHex[strings.TrimPrefix(d, digestPrefix)] = q
	}
	quars, err := syncRecords(ctx, b, bucketQuarantine, byHex, func(hex string, _ *Quarantine) bool {
		return presign.IsHexSHA256(hex)
	})
	if err != nil {
		return err
	}
	byDigest := make(map[string]indexed[*Quarantine], len(quars))
	for hex, q := range quars {
		byDigest[digestPrefix+hex] = q
	}
	b.publish(metas, byDigest)
	return nil
}

// syncRecords lists prefix and returns its records by name (the key
// without prefix and suffix), reusing those of old whose ETag is
// unchanged. A record deleted between the listing and its read is left
// out; one that fails ok is ignored (not this store's).
func syncRecords[T any](ctx context.Context, b *BucketStore, prefix string, old map[string]indexed[*T], ok func(string, *T) bool) (map[string]indexed[*T], error) {
	objs, err := b.bucket.List(ctx, prefix)
	if err != nil {
		return nil, b.unavailable("sync "+prefix, err)
	}
	out := make(map[string]indexed[*T], len(objs))
	for _, o := range objs {
		name, isRecord := strings.CutSuffix(strings.TrimPrefix(o.Key, prefix), recordSuffix)
		if !isRecord {
			continue
		}
		if cur, seen := old[name]; seen && cur.etag == o.ETag {
			out[name] = cur
			continue
		}
		v := new(T)
		etag, err := b.readRecord(ctx, "sync "+prefix, o.Key, v)
		if errors.Is(err, s3store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ok(name, v) {
			out[name] = indexed[*T]{etag: etag, v: v}
		}
	}
	return out, nil
}

// publish makes metas and quars (by digest) the index. Called with b.mu
// held.
func (b *BucketStore) publish(metas map[string]indexed[*metaRecord], quars map[string]indexed[*Quarantine]) {
	q := make(map[string]*Quarantine, len(quars)+len(b.unsaved))
	for d, e := range quars {
		q[d] = e.v
	}
	for d, u := range b.unsaved {
		if q[d] == nil {
			q[d] = u
		}
	}
	b.idx.Store(&bucketIndex{metas: metas, quars: quars, quarantined: q})
}

// change publishes the index with f applied to copies of its maps; f
// runs with b.mu held, so it may also change b.unsaved.
func (b *BucketStore) change(f func(metas map[string]indexed[*metaRecord], quars map[string]indexed[*Quarantine])) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.idx.Load()
	metas, quars := maps.Clone(old.metas), maps.Clone(old.quars)
	if metas == nil {
		metas = map[string]indexed[*metaRecord]{}
	}
	if quars == nil {
		quars = map[string]indexed[*Quarantine]{}
	}
	f(metas, quars)
	b.publish(metas, quars)
}

// Quarantined returns the quarantine of the code with digest, or nil. It
// takes no lock and does not allocate.
func (b *BucketStore) Quarantined(digest string) *Quarantine {
	return b.idx.Load().quarantined[digest]
}

// view is the artifact of m as callers see it: a copy, with the
// quarantine its digest has now.
func (b *BucketStore) view(m *metaRecord) *Artifact {
	a := m.Artifact
	a.Quarantine = b.Quarantined(a.Digest)
	return &a
}

// Get returns the artifact with id, or ErrNotFound. An id the index does
// not have is looked up in the bucket, so an artifact another host has
// just committed is found before the next Sync.
func (b *BucketStore) Get(ctx context.Context, id string) (*Artifact, error) {
	if err := checkArtifactID(id); err != nil {
		return nil, err
	}
	if e, ok := b.idx.Load().metas[id]; ok {
		return b.view(e.v), nil
	}
	m := new(metaRecord)
	etag, err := b.readRecord(ctx, "get artifact "+id, metaKey(id), m)
	if errors.Is(err, s3store.ErrNotFound) {
		return nil, MissingArtifact(id)
	}
	if err != nil {
		return nil, err
	}
	if m.ID != id {
		return nil, b.unavailable("get artifact "+id, fmt.Errorf("record %s names %q", metaKey(id), m.ID))
	}
	b.change(func(metas map[string]indexed[*metaRecord], _ map[string]indexed[*Quarantine]) {
		metas[id] = indexed[*metaRecord]{etag: etag, v: m}
	})
	return b.view(m), nil
}

// List returns the artifacts of env ("" for every environment) as of the
// last Sync, oldest first.
func (b *BucketStore) List(ctx context.Context, env string) ([]*Artifact, error) {
	out := []*Artifact{}
	for _, e := range b.idx.Load().metas {
		if env == "" || e.v.Env == env {
			out = append(out, b.view(e.v))
		}
	}
	sortArtifacts(out)
	return out, nil
}

// Delete removes the artifact's record (only the version read, so a host
// never deletes what it did not see). The deletion is audited first. The
// module bytes stay: they are content addressed, and another host may be
// committing the same digest right now, having found the object there and
// skipped its copy; deleting them would leave its artifact without code.
// Collecting bytes no record refers to is a follow-up. For the same
// reason a quarantine of the digest stays (the local store drops it with
// the digest's last artifact): the same code uploaded again is refused.
func (b *BucketStore) Delete(ctx context.Context, id, actor, requestID string) error {
	if err := checkArtifactID(id); err != nil {
		return err
	}
	op := "delete artifact " + id
	m := new(metaRecord)
	etag, err := b.readRecord(ctx, op, metaKey(id), m)
	if errors.Is(err, s3store.ErrNotFound) {
		b.forget(id)
		return fmt.Errorf("delete artifact: %w", missingMeta(id))
	}
	if err != nil {
		return err
	}
	if err := b.cfg.Audit.Record(ctx, deletedEvent(&m.Artifact, actor, requestID)); err != nil {
		return fmt.Errorf("delete artifact %s: audit: %w", id, err)
	}
	err = b.bucket.DeleteIfMatch(ctx, metaKey(id), etag)
	if errors.Is(err, s3store.ErrNotFound) {
		err = nil // deleted by another host meanwhile: gone all the same
	}
	if err != nil {
		err = b.unavailable(op, err)
		_ = b.cfg.Audit.Record(ctx, failedEvent(audit.TypeArtifactDeleted, "artifact/"+id, actor, requestID,
			"delete failed after it was recorded: "+err.Error()))
		return err
	}
	b.forget(id)
	return nil
}

func (b *BucketStore) forget(id string) {
	b.change(func(metas map[string]indexed[*metaRecord], _ map[string]indexed[*Quarantine]) {
		delete(metas, id)
	})
}

// withDigest returns the artifacts with digest, oldest first, or
// ErrNotFound. If the index has none it syncs first: they may have been
// committed on another host since the last Sync.
func (b *BucketStore) withDigest(ctx context.Context, digest string) ([]*metaRecord, error) {
	if out, err := b.indexedWithDigest(digest); err == nil {
		return out, nil
	}
	if err := b.Sync(ctx); err != nil {
		return nil, err
	}
	return b.indexedWithDigest(digest)
}

func (b *BucketStore) indexedWithDigest(digest string) ([]*metaRecord, error) {
	var out []*metaRecord
	for _, e := range b.idx.Load().metas {
		if e.v.Digest == digest {
			out = append(out, e.v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no artifact has digest %s", ErrNotFound, digest)
	}
	sortMetas(out)
	return out, nil
}

func sortMetas(ms []*metaRecord) {
	as := make([]*Artifact, len(ms))
	byID := make(map[string]*metaRecord, len(ms))
	for i, m := range ms {
		as[i], byID[m.ID] = &m.Artifact, m
	}
	sortArtifacts(as)
	for i, a := range as {
		ms[i] = byID[a.ID]
	}
}
