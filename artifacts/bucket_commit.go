package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/s3store"
)

// Commit turns the bytes a client PUT to uploads/<id> into an artifact,
// on any host (the upload's record is in the bucket). The bytes are read
// back, checked against the declared size and sha256 and validated
// exactly as the local store does; a module that fails rejects the upload
// for good. Then this host claims the upload (its record goes committing,
// over the ETag read), copies the bytes to artifacts/sha256/<hex> (only
// the version verified), and writes meta/<art-id>.json: that record is
// the commit point. A commit lost to another host is ErrUploadState
// naming the host; a bucket failure is ErrUnavailable and leaves the
// upload committable.
func (b *BucketStore) Commit(ctx context.Context, uploadID, actor, requestID string) (*Artifact, error) {
	if err := checkUploadID(uploadID); err != nil {
		return nil, err
	}
	if !b.begin(uploadID) {
		return nil, fmt.Errorf("%w: upload %s is being committed by another request", ErrUploadState, uploadID)
	}
	defer b.end(uploadID)
	rec, etag, err := b.loadUpload(ctx, uploadID)
	if err == nil && rec.State == stateCommitting {
		rec, etag, err = b.resolveClaim(ctx, rec, etag)
	}
	if err != nil {
		return nil, err
	}
	if err := rec.finished(); err != nil {
		return nil, err
	}
	if rec.State == stateCommitting {
		return nil, claimedError(rec)
	}
	size, objTag, err := b.bucket.Head(ctx, uploadBytesKey(uploadID))
	if errors.Is(err, s3store.ErrNotFound) {
		return nil, rec.notUploaded(b.now())
	}
	if err != nil {
		return nil, b.unavailable("commit upload "+uploadID, err)
	}
	// A slot from before the bytes are read, as in the local store.
	release, err := b.comp.slot(ctx)
	if err != nil {
		return nil, fmt.Errorf("commit upload %s: %w", uploadID, err)
	}
	defer release()
	data, verr, err := b.fetchUpload(ctx, rec, size)
	if err != nil {
		return nil, err
	}
	var info Info
	if verr == nil {
		info, verr = b.comp.validate(ctx, data, rec.Kind, digestPrefix+rec.SHA256)
		if verr != nil && !moduleFault(verr) {
			return nil, fmt.Errorf("commit upload %s: %w", uploadID, verr)
		}
	}
	if verr != nil {
		return nil, b.reject(ctx, rec, etag, actor, requestID, verr)
	}
	return b.store(ctx, rec, etag, objTag, info, actor, requestID)
}

// fetchUpload reads the uploaded bytes, at most the declared size. A
// mismatch with the declared size or sha256 (which the bucket should have
// refused at the PUT) is returned as the module's fault, verr; a bucket
// failure as err.
func (b *BucketStore) fetchUpload(ctx context.Context, rec *uploadRecord, size int64) (data []byte, verr, err error) {
	if size != rec.Size {
		return nil, fmt.Errorf("%w: the uploaded object has %d bytes, the upload declared %d", ErrInvalidModule, size, rec.Size), nil
	}
	buf := &memWriterAt{buf: make([]byte, 0, rec.Size)}
	n, err := b.bucket.Get(ctx, uploadBytesKey(rec.ID), buf)
	if err != nil {
		return nil, nil, b.unavailable("commit upload "+rec.ID, err)
	}
	data = buf.buf
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != rec.SHA256 || n != rec.Size {
		return nil, fmt.Errorf("%w: the uploaded bytes do not match the upload: sha256 %s (%d bytes), declared %s", ErrInvalidModule, got, n, rec.SHA256), nil
	}
	return data, nil, nil
}

// reject records a failed validation: the upload is rejected for good
// (over the ETag read: a lost race says so instead) and its bytes
// removed.
func (b *BucketStore) reject(ctx context.Context, rec *uploadRecord, etag, actor, requestID string, verr error) error {
	rec.State, rec.Reason = stateRejected, verr.Error()
	errs := []error{fmt.Errorf("commit upload %s: %w", rec.ID, verr)}
	if _, err := b.writeRecord(ctx, "reject upload "+rec.ID, uploadRecordKey(rec.ID), rec, etag); lostRace(err) {
		return b.lostTo(ctx, rec.ID)
	} else if err != nil {
		errs = append(errs, err)
	} else {
		b.retire(ctx, rec.ID)
	}
	if err := b.cfg.Audit.Record(ctx, rec.rejectedEvent(actor, requestID, verr)); err != nil {
		errs = append(errs, fmt.Errorf("audit: %w", err))
	}
	return errors.Join(errs...)
}

// store claims the validated upload, audits the commit and writes the
// artifact: bytes, then its record (the commit point), then the upload's
// record. A failure before the commit point is audited as an error and
// releases the claim.
func (b *BucketStore) store(ctx context.Context, rec *uploadRecord, etag, objTag string, info Info, actor, requestID string) (*Artifact, error) {
	op := "commit upload " + rec.ID
	now := b.now()
	rec.State, rec.ClaimedBy, rec.ClaimedAt = stateCommitting, b.cfg.HostID, now.UTC()
	claimTag, err := b.writeRecord(ctx, op, uploadRecordKey(rec.ID), rec, etag)
	if lostRace(err) {
		return nil, b.lostTo(ctx, rec.ID)
	}
	if err != nil {
		return nil, err
	}
	art, err := rec.artifact(info, now, b.Quarantined(digestPrefix+rec.SHA256))
	if err == nil {
		if err = b.cfg.Audit.Record(ctx, committedEvent(rec, art, actor, requestID)); err != nil {
			err = fmt.Errorf("commit upload %s: audit: %w", rec.ID, err)
		}
	}
	if err != nil {
		b.unclaim(ctx, rec, claimTag)
		return nil, err
	}
	fail := func(err error) (*Artifact, error) {
		_ = b.cfg.Audit.Record(ctx, failedEvent(audit.TypeArtifactCommitted, "artifact/"+art.ID, actor, requestID,
			"commit failed after it was recorded; nothing was stored: "+err.Error()))
		// If the bucket is down this fails too; the claim is this
		// host's, so its next Commit of the upload (or a restart)
		// resolves it.
		b.unclaim(ctx, rec, claimTag)
		return nil, err
	}
	// Content addressed: an object already there has these very bytes
	// (and Module checks them on every download anyway).
	if err := b.bucket.Copy(ctx, uploadBytesKey(rec.ID), objTag, objectKey(rec.SHA256)); err != nil && !errors.Is(err, s3store.ErrExists) {
		return fail(b.unavailable(op, err))
	}
	m := &metaRecord{Artifact: *art, UploadID: rec.ID}
	metaTag, err := b.writeRecord(ctx, op, metaKey(art.ID), m, "")
	if errors.Is(err, s3store.ErrExists) {
		err = b.unavailable(op, fmt.Errorf("record %s already exists", metaKey(art.ID)))
	}
	if err != nil {
		return fail(err)
	}
	// Committed. What follows is bookkeeping that resolveClaim redoes if
	// it does not happen.
	b.change(func(metas map[string]indexed[*metaRecord], _ map[string]indexed[*Quarantine]) {
		metas[art.ID] = indexed[*metaRecord]{etag: metaTag, v: m}
	})
	b.markCommitted(ctx, rec, claimTag, art.ID)
	return b.view(m), nil
}

// markCommitted records that upload rec became artifact artID and
// retires its bytes. If the record changed meanwhile (another host took this
// claim for a crashed one and reverted it), the artifact exists all the
// same: it is marked over the new version.
func (b *BucketStore) markCommitted(ctx context.Context, rec *uploadRecord, etag, artID string) {
	rec.State, rec.ArtifactID, rec.Reason = stateCommitted, artID, ""
	rec.ClaimedBy, rec.ClaimedAt = "", time.Time{}
	_, err := b.writeRecord(ctx, "commit upload "+rec.ID, uploadRecordKey(rec.ID), rec, etag)
	if lostRace(err) {
		if cur, tag, lerr := b.loadUpload(ctx, rec.ID); lerr == nil && cur.State != stateCommitted {
			_, err = b.writeRecord(ctx, "commit upload "+rec.ID, uploadRecordKey(rec.ID), rec, tag)
		}
	}
	if err == nil {
		b.retire(ctx, rec.ID)
	}
}

// retire frees the bytes of an upload that is done with (committed or
// rejected) but keeps its key taken: they are replaced by an empty
// object, over the version there (If-Match), instead of deleted, so that
// its URL, valid until it expires, stays used up (If-None-Match: *
// refuses a PUT while the key exists). Best effort: a leftover costs only
// space, never read again.
func (b *BucketStore) retire(ctx context.Context, id string) {
	size, etag, err := b.bucket.Head(ctx, uploadBytesKey(id))
	if err == nil && size > 0 {
		_, _ = b.bucket.PutIfMatch(ctx, uploadBytesKey(id), []byte{}, etag)
	}
}

// unclaim gives a claim back: the upload is received again, committable
// by any host. Best effort: a claim left behind is resolved later.
func (b *BucketStore) unclaim(ctx context.Context, rec *uploadRecord, etag string) {
	rec.State, rec.ClaimedBy, rec.ClaimedAt = stateReceived, "", time.Time{}
	_, _ = b.writeRecord(ctx, "release claim on upload "+rec.ID, uploadRecordKey(rec.ID), rec, etag)
}

// lostTo is the error of a Commit whose conditional write found the
// upload's record changed: it says by whom, as far as the record tells.
func (b *BucketStore) lostTo(ctx context.Context, id string) error {
	rec, _, err := b.loadUpload(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: upload %s changed while it was being committed", ErrConflict, id)
	}
	if err := rec.finished(); err != nil {
		return err
	}
	if rec.State == stateCommitting {
		return claimedError(rec)
	}
	return fmt.Errorf("%w: upload %s changed while it was being committed; retry", ErrConflict, id)
}

func claimedError(rec *uploadRecord) error {
	return fmt.Errorf("%w: upload %s is being committed by host %s (since %s)", ErrConflict, rec.ID, rec.ClaimedBy, rec.ClaimedAt.Format(time.RFC3339))
}

func lostRace(err error) bool {
	return errors.Is(err, s3store.ErrExists) || errors.Is(err, s3store.ErrPreconditionFailed) || errors.Is(err, s3store.ErrNotFound)
}

func (b *BucketStore) begin(id string) bool {
	b.cmu.Lock()
	defer b.cmu.Unlock()
	if _, busy := b.committing[id]; busy {
		return false
	}
	b.committing[id] = struct{}{}
	return true
}

func (b *BucketStore) end(id string) {
	b.cmu.Lock()
	defer b.cmu.Unlock()
	delete(b.committing, id)
}
