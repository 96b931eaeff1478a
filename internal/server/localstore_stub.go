package server

import (
	"context"

	"github.com/udfhost/udfhost/artifacts"
)

// localStore adapts *artifacts.Store to artifacts.Service until the
// artifacts package implements it itself (TEMPORARY: dropped at the merge).
type localStore struct{ *artifacts.Store }

func (l localStore) UploadOf(_ context.Context, id string) (artifacts.UploadInfo, error) {
	return l.Store.UploadOf(id)
}

func (l localStore) Module(ctx context.Context, digest, _ string) ([]byte, error) {
	return l.Store.Module(ctx, digest)
}

func (l localStore) Sync(context.Context) error { return nil }
