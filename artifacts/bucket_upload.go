package artifacts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/udfhost/udfhost/internal/s3store"
)

// CreateUpload validates req (as the local store does), records a pending
// upload in the bucket and returns a SigV4 pre-signed PUT of
// uploads/<id>: the size, the sha256 and If-None-Match: * are signed in,
// so the bucket refuses other bytes and a second PUT. Headers are exactly
// those the client must send. The issue is audited; if the audit log
// refuses, the record is removed and no URL is handed out.
func (b *BucketStore) CreateUpload(ctx context.Context, req UploadRequest) (Upload, error) {
	now := b.now()
	rec, err := b.limits.newUpload(req, now)
	if err != nil {
		return Upload{}, err
	}
	op := "create upload " + rec.ID
	// At least a second: ExpiresAt is truncated to whole seconds.
	url, headers, err := b.bucket.PresignPut(ctx, uploadBytesKey(rec.ID), rec.Size, rec.SHA256, max(rec.ExpiresAt.Sub(now), time.Second))
	if err != nil {
		return Upload{}, b.unavailable(op, err)
	}
	if _, err := b.writeRecord(ctx, op, uploadRecordKey(rec.ID), rec, ""); err != nil {
		if errors.Is(err, s3store.ErrExists) {
			err = b.unavailable(op, fmt.Errorf("record %s already exists", uploadRecordKey(rec.ID)))
		}
		return Upload{}, err
	}
	if err := b.cfg.Audit.Record(ctx, rec.issuedEvent()); err != nil {
		// Fail closed: an unaudited URL must not be usable. Without its
		// record, the bytes it may bring are never committed.
		_ = b.bucket.Delete(ctx, uploadRecordKey(rec.ID))
		return Upload{}, fmt.Errorf("create upload: audit: %w", err)
	}
	return Upload{ID: rec.ID, URL: url, Method: http.MethodPut, Headers: headers, ExpiresAt: rec.ExpiresAt}, nil
}

// UploadOf returns what upload id was issued for, from its record in the
// bucket (so an upload issued by another host is known).
func (b *BucketStore) UploadOf(ctx context.Context, id string) (UploadInfo, error) {
	if err := checkUploadID(id); err != nil {
		return UploadInfo{}, err
	}
	rec, _, err := b.loadUpload(ctx, id)
	if err != nil {
		return UploadInfo{}, err
	}
	return rec.info(), nil
}

// loadUpload reads upload id's record and its ETag.
func (b *BucketStore) loadUpload(ctx context.Context, id string) (*uploadRecord, string, error) {
	rec := new(uploadRecord)
	etag, err := b.readRecord(ctx, "commit upload "+id, uploadRecordKey(id), rec)
	if errors.Is(err, s3store.ErrNotFound) {
		return nil, "", MissingUpload(id)
	}
	if err != nil {
		return nil, "", err
	}
	if rec.ID != id {
		return nil, "", b.unavailable("commit upload "+id, fmt.Errorf("record %s names %q", uploadRecordKey(id), rec.ID))
	}
	return rec, etag, nil
}
