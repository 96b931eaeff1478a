package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/names"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

type artifactService struct {
	udfhostv1.UnimplementedArtifactServiceServer
	s *Server
}

func envOrDefault(env string) string {
	if env == "" {
		return "default"
	}
	return env
}

func (a *artifactService) CreateUploadURL(ctx context.Context, req *udfhostv1.CreateUploadURLRequest) (*udfhostv1.CreateUploadURLResponse, error) {
	env := envOrDefault(req.Env)
	check := []nameArg{{names.Env, env}}
	if req.Name != "" {
		check = append(check, nameArg{names.ArtifactName, req.Name})
	}
	if err := a.s.checkNames(ctx, check...); err != nil {
		return nil, err
	}
	if err := a.s.authorize(ctx, envRef(env), ""); err != nil {
		return nil, err
	}
	e, err := a.s.policyOf(ctx).Env(env)
	if err != nil {
		return nil, err
	}
	kind := artifacts.KindUDF
	if req.Kind == udfhostv1.ArtifactKind_ARTIFACT_KIND_CONNECTOR {
		kind = artifacts.KindConnector
	}
	c := callerOf(ctx)
	// The URL is bound to this environment and network: CommitUpload
	// from another network is refused.
	up, err := a.s.store.CreateUpload(ctx, artifacts.UploadRequest{
		Kind: kind, Env: env, Name: req.Name, Size: req.Size, SHA256: strings.ToLower(req.Sha256),
		TTL: time.Duration(req.TtlSeconds) * time.Second, Actor: c.name, RequestID: requestIDOf(ctx),
		Network: c.network, Visibility: visibilityOf(e.Visibility),
	})
	if err != nil {
		return nil, err
	}
	return &udfhostv1.CreateUploadURLResponse{
		UploadId: up.ID, Url: up.URL, Method: up.Method, Headers: up.Headers,
		ExpiresAt: timestamppb.New(up.ExpiresAt),
	}, nil
}

// CommitUpload validates and stores an uploaded module as an artifact of
// the environment its URL was issued for, while the environment has the
// visibility it had then, and from the network it was issued on only.
func (a *artifactService) CommitUpload(ctx context.Context, req *udfhostv1.CommitUploadRequest) (*udfhostv1.Artifact, error) {
	if err := a.s.checkNames(ctx, nameArg{names.UploadID, req.UploadId}); err != nil {
		return nil, err
	}
	up, err := a.s.store.UploadOf(ctx, req.UploadId)
	if err != nil {
		return nil, err
	}
	ref := uploadRef(up.Env, up.ID)
	if err := a.s.authorize(ctx, ref, ""); err != nil {
		return nil, err
	}
	e, err := a.s.policyOf(ctx).Env(up.Env)
	if err != nil {
		return nil, err
	}
	if now, then := visibilityOf(e.Visibility), visibilityOf(up.Visibility); now != then {
		return nil, fmt.Errorf("%w: environment %q is %s, and was %s when the URL of upload %s was issued; ask for a new URL", errStale, up.Env, now, then, up.ID)
	}
	c := callerOf(ctx)
	issued := up.Network
	if issued == "" {
		issued = policies.PublicNetwork // issued before there were networks
	}
	if issued != c.network {
		err := fmt.Errorf("%w: upload %s was issued on network %q; CommitUpload arrived on network %q: commit it from the network that asked for its URL",
			policies.ErrPermission, up.ID, issued, c.network)
		a.s.denied(ctx, c.action, ref, err, false)
		return nil, err
	}
	art, err := a.s.store.Commit(ctx, req.UploadId, c.name, requestIDOf(ctx))
	if err != nil {
		return nil, commitError(err)
	}
	return artifactProto(art), nil
}

// commitError gives a Commit refused for want of a compile slot its retry
// hint (google.rpc.RetryInfo at the edge); nothing was changed, so the same
// CommitUpload may be retried then.
func commitError(err error) error {
	var busy *artifacts.BusyError
	if errors.As(err, &busy) {
		return &overloadError{err: err, after: busy.RetryAfter}
	}
	return err
}

func (a *artifactService) GetArtifact(ctx context.Context, req *udfhostv1.GetArtifactRequest) (*udfhostv1.Artifact, error) {
	if err := a.s.checkNames(ctx, nameArg{names.ArtifactID, req.Id}); err != nil {
		return nil, err
	}
	art, err := a.s.getArtifact(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	return artifactProto(art), nil
}

// getArtifact returns the artifact id once the caller in ctx is
// authorized for its RPC's action on it; one it may not see is answered
// as one that does not exist.
func (s *Server) getArtifact(ctx context.Context, id string) (*artifacts.Artifact, error) {
	art, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, artifactRef(art.Env, art.ID), visibilityOf(art.Visibility)); err != nil {
		return nil, err
	}
	return art, nil
}

func (a *artifactService) ListArtifacts(ctx context.Context, req *udfhostv1.ListArtifactsRequest) (*udfhostv1.ListArtifactsResponse, error) {
	if req.Env != "" {
		if err := a.s.checkNames(ctx, nameArg{names.Env, req.Env}); err != nil {
			return nil, err
		}
		if err := a.s.authorize(ctx, envRef(req.Env), ""); err != nil {
			return nil, err
		}
		if _, err := a.s.policyOf(ctx).Env(req.Env); err != nil {
			return nil, err
		}
	}
	arts, err := a.s.store.List(ctx, req.Env)
	if err != nil {
		return nil, err
	}
	shown := a.s.listFilter(ctx)
	resp := &udfhostv1.ListArtifactsResponse{}
	for _, art := range arts {
		if shown(art.Env, art.Visibility) {
			resp.Artifacts = append(resp.Artifacts, artifactProto(art))
		}
	}
	return resp, nil
}

// DeleteArtifact deletes an artifact no function uses. It excludes
// CreateFunction on the same digest (digestLocks): the functions using it
// are looked up under the lock, and CreateFunction looks the artifact up
// again under it, so a function is never bound to a deleted artifact
// whichever call gets the lock first.
func (a *artifactService) DeleteArtifact(ctx context.Context, req *udfhostv1.DeleteArtifactRequest) (*udfhostv1.DeleteArtifactResponse, error) {
	if err := a.s.checkNames(ctx, nameArg{names.ArtifactID, req.Id}); err != nil {
		return nil, err
	}
	art, err := a.s.getArtifact(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	defer a.s.digestLocks.lock(art.Digest)()
	if users := a.s.fns.UsingArtifact(req.Id); len(users) > 0 {
		names := make([]string, len(users))
		for i, f := range users {
			names[i] = f.Env + "/" + f.Name
		}
		return nil, fmt.Errorf("artifact %s is %w by functions %s; delete them first", req.Id, errInUse, strings.Join(names, ", "))
	}
	if err := a.s.store.Delete(ctx, req.Id, callerOf(ctx).name, requestIDOf(ctx)); err != nil {
		return nil, err
	}
	return &udfhostv1.DeleteArtifactResponse{}, nil
}

// ReleaseArtifact lifts the quarantine of an artifact and of every artifact
// with its digest; its violation count starts again from zero. The release
// is audited first: if the log refuses, the artifact stays quarantined.
func (a *artifactService) ReleaseArtifact(ctx context.Context, req *udfhostv1.ReleaseArtifactRequest) (*udfhostv1.Artifact, error) {
	if err := a.s.checkNames(ctx, nameArg{names.ArtifactID, req.Id}); err != nil {
		return nil, err
	}
	art, err := a.s.getArtifact(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	q := a.s.store.Quarantined(art.Digest)
	if q == nil {
		return artifactProto(art), nil // nothing to release
	}
	e := callerOf(ctx).stamp(audit.Event{
		Type: audit.TypeArtifactReleased, Resource: "artifact/" + art.ID,
		Decision: audit.Allow, Reason: "quarantine lifted by an admin",
		Details: map[string]string{
			"digest": art.Digest, "quarantined_at": q.Since.Format(time.RFC3339),
			"violations": strconv.Itoa(q.Violations), "quarantine_reason": q.Reason,
		},
	})
	if err := a.s.audit.Record(ctx, e); err != nil {
		return nil, fmt.Errorf("release artifact %s: %w", art.ID, err)
	}
	rel, _, err := a.s.store.Release(ctx, art.ID)
	if err != nil {
		e.Decision, e.Reason = audit.Error, "release failed after it was recorded; still quarantined: "+err.Error()
		a.s.audit.Record(ctx, e)
		return nil, err
	}
	a.s.log.Info("artifact released", "artifact", art.ID, "digest", art.Digest, "by", callerOf(ctx).name)
	return artifactProto(rel), nil
}

func artifactProto(a *artifacts.Artifact) *udfhostv1.Artifact {
	p := &udfhostv1.Artifact{
		Id: a.ID, Digest: a.Digest, Size: a.Size, Env: a.Env, Name: a.Name,
		AbiVersion: a.ABIVersion, CreatedAt: timestamppb.New(a.CreatedAt), Imports: a.Imports,
		Kind: udfhostv1.ArtifactKind_ARTIFACT_KIND_UDF,
	}
	if a.Kind == artifacts.KindConnector {
		p.Kind = udfhostv1.ArtifactKind_ARTIFACT_KIND_CONNECTOR
	}
	if q := a.Quarantine; q != nil {
		p.Quarantined, p.QuarantineReason, p.QuarantinedAt = true, q.Reason, timestamppb.New(q.Since)
	}
	for _, e := range a.Exports {
		p.Exports = append(p.Exports, &udfhostv1.Export{Name: e.Name, Params: e.Params, Results: e.Results})
	}
	return p
}
