package artifacts

import (
	"context"
	"errors"
	"fmt"

	"github.com/udfhost/udfhost/internal/s3store"
)

// Quarantine quarantines every artifact with digest, on every host: the
// quarantine is one record per digest, created only if absent, so the
// first quarantine stays (as in the local store). Calls are refused here
// from the moment Quarantine is called; if the bucket cannot take the
// record, the error says so and Sync writes it later. It returns
// ErrNotFound if no artifact has digest.
func (b *BucketStore) Quarantine(ctx context.Context, digest string, q Quarantine) ([]*Artifact, error) {
	h, err := parseDigest(digest)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	metas, err := b.withDigest(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("quarantine %s: %w", digest, err)
	}
	if cur := b.Quarantined(digest); cur != nil {
		q = *cur
	}
	q.Since = q.Since.UTC()
	pending := q // published: never modified again
	b.change(func(map[string]indexed[*metaRecord], map[string]indexed[*Quarantine]) {
		b.unsaved[digest] = &pending
	})

	saved := q
	etag, werr := b.writeRecord(ctx, "quarantine "+digest, quarantineKey(h), &quarantineRecord{Digest: digest, Quarantine: q}, "")
	if errors.Is(werr, s3store.ErrExists) {
		// Another host quarantined the code first: its quarantine stands.
		etag, werr = b.readRecord(ctx, "quarantine "+digest, quarantineKey(h), &saved)
	}
	if werr != nil {
		return nil, werr // still enforced here, saved by the next Sync
	}
	// In one change, so that the code is never shown unquarantined.
	b.change(func(_ map[string]indexed[*metaRecord], quars map[string]indexed[*Quarantine]) {
		delete(b.unsaved, digest)
		quars[digest] = indexed[*Quarantine]{etag: etag, v: &saved}
	})
	out := make([]*Artifact, len(metas))
	for i, m := range metas {
		out[i] = b.view(m)
	}
	return out, nil
}

// saveUnsaved writes the quarantines the bucket could not take before;
// those it still cannot take stay unsaved. Called with b.mu held.
func (b *BucketStore) saveUnsaved(ctx context.Context) {
	for digest, q := range b.unsaved {
		h, err := parseDigest(digest)
		if err != nil {
			delete(b.unsaved, digest)
			continue
		}
		_, err = b.writeRecord(ctx, "quarantine "+digest, quarantineKey(h), &quarantineRecord{Digest: digest, Quarantine: *q}, "")
		if err == nil || errors.Is(err, s3store.ErrExists) {
			delete(b.unsaved, digest)
		}
	}
}

// Release lifts the quarantine of artifact id, and so of every artifact
// with its digest, on every host: it deletes the quarantine record (the
// version read). It returns the artifact and whether it was quarantined.
func (b *BucketStore) Release(ctx context.Context, id string) (*Artifact, bool, error) {
	art, err := b.Get(ctx, id)
	if err != nil {
		return nil, false, fmt.Errorf("release artifact: %w", err)
	}
	h, err := parseDigest(art.Digest)
	if err != nil {
		return nil, false, fmt.Errorf("release artifact %s: %w", id, err)
	}
	op := "release artifact " + id
	b.mu.Lock()
	_, was := b.unsaved[art.Digest]
	b.mu.Unlock()
	was = was || art.Quarantine != nil
	for attempt := 0; ; attempt++ {
		var q Quarantine
		etag, err := b.readRecord(ctx, op, quarantineKey(h), &q)
		if errors.Is(err, s3store.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, false, err
		}
		was = true
		err = b.bucket.DeleteIfMatch(ctx, quarantineKey(h), etag)
		if err == nil || errors.Is(err, s3store.ErrNotFound) {
			break
		}
		if !errors.Is(err, s3store.ErrPreconditionFailed) || attempt == 2 {
			return nil, false, b.unavailable(op, err)
		}
		// Replaced meanwhile (released and quarantined again): read it again.
	}
	b.change(func(_ map[string]indexed[*metaRecord], quars map[string]indexed[*Quarantine]) {
		delete(b.unsaved, art.Digest)
		delete(quars, art.Digest)
	})
	art.Quarantine = nil
	return art, was, nil
}
