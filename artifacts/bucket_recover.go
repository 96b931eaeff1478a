package artifacts

import (
	"context"
	"errors"
	"strings"
	"time"
)

// resolveClaim finishes a commit that died: a claim of this host (the
// caller has begun this upload, so no Commit here holds it) or one older
// than the lease. If the artifact's record exists the upload is marked
// committed, otherwise received again. A live claim of another host is
// returned as it is.
func (b *BucketStore) resolveClaim(ctx context.Context, rec *uploadRecord, etag string) (*uploadRecord, string, error) {
	if rec.ClaimedBy != b.cfg.HostID && b.now().Sub(rec.ClaimedAt) < b.cfg.CommitLease {
		return rec, etag, nil
	}
	if err := b.Sync(ctx); err != nil {
		return nil, "", err
	}
	artID := ""
	for id, e := range b.idx.Load().metas {
		if e.v.UploadID == rec.ID {
			artID = id
		}
	}
	if artID != "" {
		b.markCommitted(ctx, rec, etag, artID)
		return b.loadUpload(ctx, rec.ID)
	}
	rec.State, rec.ClaimedBy, rec.ClaimedAt = stateReceived, "", time.Time{}
	tag, err := b.writeRecord(ctx, "resolve upload "+rec.ID, uploadRecordKey(rec.ID), rec, etag)
	if lostRace(err) {
		return b.loadUpload(ctx, rec.ID)
	}
	if err != nil {
		return nil, "", err
	}
	return rec, tag, nil
}

// recoverClaims resolves, at start, every commit left unfinished (see
// resolveClaim). It reads every upload record: the listing does not say
// which are committing.
func (b *BucketStore) recoverClaims(ctx context.Context) error {
	objs, err := b.bucket.List(ctx, bucketUploads)
	if err != nil {
		return b.unavailable("recover uploads", err)
	}
	for _, o := range objs {
		id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, bucketUploads), recordSuffix)
		if !ok || !validUploadID(id) {
			continue
		}
		rec, etag, err := b.loadUpload(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // removed since the listing
		}
		if err != nil {
			return err
		}
		if rec.State == stateCommitting {
			if _, _, err := b.resolveClaim(ctx, rec, etag); err != nil {
				return err
			}
		}
	}
	return nil
}
