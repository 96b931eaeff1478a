package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/atomicfile"
)

// Commit turns a received upload into an artifact: the staged bytes are
// re-hashed, validated for the upload's kind, stored by digest and described
// by new metadata. A module that fails validation rejects the upload for
// good (ErrInvalidModule or ErrDisallowedImport); an upload that is not in
// the received state gives ErrUploadState saying which state it is in.
func (s *Store) Commit(ctx context.Context, uploadID, actor, requestID string) (*Artifact, error) {
	if err := checkUploadID(uploadID); err != nil {
		return nil, err
	}
	rec, err := s.beginCommit(uploadID)
	if err != nil {
		return nil, err
	}
	defer func() {
		s.mu.Lock()
		delete(s.committing, uploadID)
		s.mu.Unlock()
	}()
	// One of MaxCompiles slots from before the bytes are read: what the
	// host holds for commits (the module, the walk, an in-process compile)
	// is bounded by the cap too, not only the compile workers.
	release, err := s.comp.slot(ctx)
	if err != nil {
		return nil, fmt.Errorf("commit upload %s: %w", uploadID, err)
	}
	defer release()

	data, err := os.ReadFile(s.stagedPath(uploadID))
	if err != nil {
		return nil, fmt.Errorf("commit upload %s: read staged bytes: %w", uploadID, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != rec.SHA256 || int64(len(data)) != rec.Size {
		// Our own staged file changed under us: never validate or store it.
		return nil, fmt.Errorf("commit upload %s: staged bytes do not match the verified upload (sha256 %s, %d bytes)", uploadID, got, len(data))
	}

	info, verr := s.comp.validate(ctx, data, rec.Kind, digestPrefix+rec.SHA256)
	if verr != nil && !moduleFault(verr) {
		// Cancelled, or the host failed: not the module's fault, so the
		// upload stays received and Commit can be retried.
		return nil, fmt.Errorf("commit upload %s: %w", uploadID, verr)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if verr != nil {
		return nil, s.rejectCommit(ctx, rec, actor, requestID, verr)
	}
	art, err := rec.artifact(info, s.now(), s.Quarantined(digestPrefix+rec.SHA256))
	if err != nil {
		return nil, err
	}
	if err := s.storeArtifact(ctx, rec, art, data, actor, requestID); err != nil {
		return nil, err
	}
	return art, nil
}

// beginCommit checks the upload's state and marks its commit in progress.
func (s *Store) beginCommit(uploadID string) (*uploadRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.loadUpload(uploadID)
	if err != nil {
		return nil, fmt.Errorf("commit upload %s: %w", uploadID, err)
	}
	if err := rec.finished(); err != nil {
		return nil, err
	}
	switch rec.State {
	case stateReceived:
	case statePending, stateUploading:
		if _, busy := s.receiving[uploadID]; busy {
			return nil, fmt.Errorf("%w: upload %s is still receiving its bytes", ErrUploadState, uploadID)
		}
		return nil, rec.notUploaded(s.now())
	default: // committing is a bucket store's state
		return nil, fmt.Errorf("%w: upload %s is in unknown state %q", ErrUploadState, uploadID, rec.State)
	}
	if _, busy := s.committing[uploadID]; busy {
		return nil, fmt.Errorf("%w: upload %s is being committed by another request", ErrUploadState, uploadID)
	}
	s.committing[uploadID] = struct{}{}
	return rec, nil
}

// rejectCommit records a validation failure: the upload is rejected for
// good and its bytes removed. Called with s.mu held.
func (s *Store) rejectCommit(ctx context.Context, rec *uploadRecord, actor, requestID string, verr error) error {
	rec.State, rec.Reason = stateRejected, verr.Error()
	var errs []error
	errs = append(errs, fmt.Errorf("commit upload %s: %w", rec.ID, verr))
	if err := s.saveUpload(rec); err != nil {
		errs = append(errs, err)
	}
	if err := removeIfExists(s.stagedPath(rec.ID)); err != nil {
		errs = append(errs, fmt.Errorf("remove staged upload: %w", err))
	}
	if err := s.record(ctx, rec.rejectedEvent(actor, requestID, verr)); err != nil {
		errs = append(errs, fmt.Errorf("audit: %w", err))
	}
	return errors.Join(errs...)
}

// storeArtifact makes art durable: object (if new), then metadata (the
// commit point), then the upload record. The commit is audited before
// anything is written; if the log refuses, nothing is. Called with s.mu
// held.
func (s *Store) storeArtifact(ctx context.Context, rec *uploadRecord, art *Artifact, data []byte, actor, requestID string) error {
	if err := s.record(ctx, committedEvent(rec, art, actor, requestID)); err != nil {
		return fmt.Errorf("commit upload %s: audit: %w", rec.ID, err)
	}

	// From here on a failure undoes what was written and is audited as an
	// error, so the log never claims an artifact that does not exist.
	fail := func(err error, created bool) error {
		err = fmt.Errorf("commit upload %s: %w", rec.ID, err)
		_ = os.Remove(s.metaPath(art.ID))
		if created {
			_ = os.Remove(s.objectPath(rec.SHA256))
		}
		_ = s.record(ctx, failedEvent(audit.TypeArtifactCommitted, "artifact/"+art.ID, actor, requestID,
			"commit failed after it was recorded; nothing was stored: "+err.Error()))
		return err
	}
	objPath := s.objectPath(rec.SHA256)
	created := false
	if _, err := os.Stat(objPath); errors.Is(err, fs.ErrNotExist) {
		// Content addressed: an existing object has these very bytes.
		if err := atomicfile.WriteFile(objPath, data, filePerm); err != nil {
			return fail(err, false)
		}
		created = true
	} else if err != nil {
		return fail(fmt.Errorf("stat object: %w", err), false)
	}
	if err := s.saveMeta(&metaRecord{Artifact: *art, UploadID: rec.ID}); err != nil {
		return fail(err, created)
	}
	// Committed. What follows is bookkeeping that New repairs after a crash
	// (it knows the upload from the metadata).
	rec.State, rec.ArtifactID, rec.Reason = stateCommitted, art.ID, ""
	if err := s.saveUpload(rec); err != nil {
		return fail(err, created)
	}
	if err := removeIfExists(s.stagedPath(rec.ID)); err != nil {
		return fmt.Errorf("commit upload %s: committed as %s, but removing the staged bytes failed: %w", rec.ID, art.ID, err)
	}
	return nil
}

// Get returns the artifact with id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Artifact, error) {
	if err := checkArtifactID(id); err != nil {
		return nil, err
	}
	m, err := s.loadMeta(id)
	if errors.Is(err, ErrNotFound) {
		return nil, MissingArtifact(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get artifact: %w", err)
	}
	// The index is what calls are checked against, even if writing a
	// quarantine to the metadata failed.
	m.Quarantine = s.Quarantined(m.Digest)
	return &m.Artifact, nil
}

// List returns the artifacts of env ("" for every environment), oldest
// first (by CreatedAt, then ID).
func (s *Store) List(ctx context.Context, env string) ([]*Artifact, error) {
	metas, err := s.loadAllMeta()
	if err != nil {
		return nil, err
	}
	out := []*Artifact{}
	for _, m := range metas {
		if env == "" || m.Env == env {
			m.Quarantine = s.Quarantined(m.Digest)
			out = append(out, &m.Artifact)
		}
	}
	sortArtifacts(out)
	return out, nil
}

// Delete removes the artifact's metadata, and its object when no other
// artifact has the same digest. The deletion is audited first; if the log
// refuses, nothing is deleted.
func (s *Store) Delete(ctx context.Context, id, actor, requestID string) error {
	if err := checkArtifactID(id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.loadMeta(id)
	if err != nil {
		return fmt.Errorf("delete artifact: %w", err)
	}
	if err := s.record(ctx, deletedEvent(&m.Artifact, actor, requestID)); err != nil {
		return fmt.Errorf("delete artifact %s: audit: %w", id, err)
	}
	if err := os.Remove(s.metaPath(id)); err != nil {
		_ = s.record(ctx, failedEvent(audit.TypeArtifactDeleted, "artifact/"+id, actor, requestID,
			"delete failed after it was recorded: "+err.Error()))
		return fmt.Errorf("delete artifact %s: %w", id, err)
	}
	if err := atomicfile.SyncDir(s.metaDir); err != nil {
		return fmt.Errorf("delete artifact %s: %w", id, err)
	}
	others, err := s.loadAllMeta()
	if err != nil {
		return fmt.Errorf("delete artifact %s: metadata removed, object kept: %w", id, err)
	}
	for _, o := range others {
		if o.Digest == m.Digest {
			return nil
		}
	}
	s.setQuarantined(m.Digest, nil) // no artifact left to be quarantined
	hexDigest, err := parseDigest(m.Digest)
	if err != nil {
		return fmt.Errorf("delete artifact %s: metadata removed, object kept: %w", id, err)
	}
	if err := removeIfExists(s.objectPath(hexDigest)); err != nil {
		return fmt.Errorf("delete artifact %s: metadata removed, object kept: %w", id, err)
	}
	if err := atomicfile.SyncDir(s.objectsDir); err != nil {
		return fmt.Errorf("delete artifact %s: %w", id, err)
	}
	return nil
}

// Module returns the bytes stored under digest ("sha256:<hex>") after
// checking that they still hash to it, so a compiler never sees unverified
// bytes. The local store reads its own disk for every pod alike, so pod
// (the SPIFFE ID the module is for) is not used.
func (s *Store) Module(ctx context.Context, digest, pod string) ([]byte, error) {
	h, err := parseDigest(digest)
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	data, err := os.ReadFile(s.objectPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read module: %w: object %s", ErrNotFound, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", digest, err)
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], mustHex(h)) {
		return nil, fmt.Errorf("read module %s: stored object is corrupt: its content hashes to sha256:%x", digest, sum)
	}
	return data, nil
}

func mustHex(h string) []byte {
	b, _ := hex.DecodeString(h) // h was checked by parseDigest
	return b
}
