package artifacts

import "context"

type Service interface {
	CreateUpload(ctx context.Context, req UploadRequest) (Upload, error)
	UploadOf(ctx context.Context, id string) (UploadInfo, error) // ctx is new
	Commit(ctx context.Context, uploadID, actor, requestID string) (*Artifact, error)
	Get(ctx context.Context, id string) (*Artifact, error)
	List(ctx context.Context, env string) ([]*Artifact, error)
	Delete(ctx context.Context, id, actor, requestID string) error
	Quarantine(ctx context.Context, digest string, q Quarantine) ([]*Artifact, error)
	Quarantined(digest string) *Quarantine
	Release(ctx context.Context, id string) (*Artifact, bool, error)
	Module(ctx context.Context, digest, pod string) ([]byte, error) // pod is new
	Sync(ctx context.Context) error                                 // refresh from what other hosts wrote; local: no-op
}
