package artifacts

import (
	"context"
	"errors"
)

// ErrUnavailable means the artifact store could not be reached or did not
// answer (a bucket that is down, slow or refusing): the call changed
// nothing and may be retried when the store is back. Messages name the
// store.
var ErrUnavailable = errors.New("artifact store unavailable")

// Service is what a server programs against: the local Store and the
// BucketStore both provide it, so the code above them does not know which
// one it has.
type Service interface {
	CreateUpload(ctx context.Context, req UploadRequest) (Upload, error)
	UploadOf(ctx context.Context, id string) (UploadInfo, error)
	Commit(ctx context.Context, uploadID, actor, requestID string) (*Artifact, error)
	Get(ctx context.Context, id string) (*Artifact, error)
	List(ctx context.Context, env string) ([]*Artifact, error)
	Delete(ctx context.Context, id, actor, requestID string) error
	Quarantine(ctx context.Context, digest string, q Quarantine) ([]*Artifact, error)
	Quarantined(digest string) *Quarantine
	Release(ctx context.Context, id string) (*Artifact, bool, error)
	// Module returns the verified bytes of digest for the pod with SPIFFE
	// ID pod.
	Module(ctx context.Context, digest, pod string) ([]byte, error)
	// Sync brings the store's in-memory view up to date with what other
	// hosts wrote (no-op for the local store).
	Sync(ctx context.Context) error
}

var (
	_ Service = (*Store)(nil)
	_ Service = (*BucketStore)(nil)
)

// Sync does nothing: a local store has no other writers.
func (s *Store) Sync(ctx context.Context) error { return nil }
