package artifacts

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/names"
	"github.com/udfhost/udfhost/presign"
)

// What both stores share: the checks of a request, the records they
// build from it and the audit events they write, so that the local and
// the bucket store refuse, record and report alike.

// uploadLimits is what a store checks upload requests against.
type uploadLimits struct {
	maxSize            int64
	defaultTTL, maxTTL time.Duration
}

// common checks and completes what both stores take of cfg: the
// auditor, the upload limits, the clock and the compiler.
func (cfg *Config) common() (uploadLimits, *compiler, error) {
	if cfg.Audit == nil {
		return uploadLimits{}, nil, errors.New("open artifact store: no auditor configured")
	}
	limits, err := newLimits(cfg.MaxSize, cfg.DefaultTTL, cfg.MaxTTL)
	if err != nil {
		return limits, nil, fmt.Errorf("open artifact store: %w", err)
	}
	cfg.MaxSize, cfg.DefaultTTL, cfg.MaxTTL = limits.maxSize, limits.defaultTTL, limits.maxTTL
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return limits, newCompiler(cfg.MaxCompiles, cfg.CompileQueueWait, cfg.CacheDir, cfg.Precompile, cfg.Runtime), nil
}

// orDefault sets *v to def when it is not positive (a field left zero).
func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// newLimits applies the defaults of Config.MaxSize, DefaultTTL and MaxTTL.
func newLimits(maxSize int64, defaultTTL, maxTTL time.Duration) (uploadLimits, error) {
	l := uploadLimits{maxSize: maxSize, defaultTTL: defaultTTL, maxTTL: maxTTL}
	orDefault(&l.maxSize, DefaultMaxSize)
	orDefault(&l.defaultTTL, DefaultUploadTTL)
	orDefault(&l.maxTTL, DefaultMaxTTL)
	if l.defaultTTL > l.maxTTL {
		return l, fmt.Errorf("default upload TTL %s exceeds maximum %s", l.defaultTTL, l.maxTTL)
	}
	return l, nil
}

// newUpload checks req and returns the pending upload it asks for, with a
// fresh id, issued at now.
func (l uploadLimits) newUpload(req UploadRequest, now time.Time) (*uploadRecord, error) {
	kind := req.Kind
	if kind == "" {
		kind = KindUDF
	}
	if kind != KindUDF && kind != KindConnector {
		return nil, fmt.Errorf("%w: kind %q must be %q or %q", ErrInvalidArgument, req.Kind, KindUDF, KindConnector)
	}
	if req.Env == "" {
		return nil, fmt.Errorf("%w: environment is required", ErrInvalidArgument)
	}
	if err := names.Env.Check(req.Env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	if req.Name != "" {
		if err := names.ArtifactName.Check(req.Name); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
	}
	if req.Size <= 0 {
		return nil, fmt.Errorf("%w: declared size %d must be positive", ErrInvalidArgument, req.Size)
	}
	if req.Size > l.maxSize {
		return nil, fmt.Errorf("%w: declared size %d bytes exceeds the maximum artifact size %d bytes", ErrTooLarge, req.Size, l.maxSize)
	}
	if !presign.IsHexSHA256(req.SHA256) {
		return nil, fmt.Errorf("%w: sha256 %q must be 64 lower-case hex digits", ErrInvalidArgument, req.SHA256)
	}
	ttl := req.TTL
	switch {
	case ttl == 0:
		ttl = l.defaultTTL
	case ttl < 0:
		return nil, fmt.Errorf("%w: upload URL lifetime %s is negative", ErrInvalidArgument, ttl)
	case ttl > l.maxTTL:
		return nil, fmt.Errorf("%w: upload URL lifetime %s exceeds the maximum %s", ErrInvalidArgument, ttl, l.maxTTL)
	}
	id, err := randomID(uploadIDPrefix)
	if err != nil {
		return nil, fmt.Errorf("create upload: %w", err)
	}
	return &uploadRecord{
		ID: id, State: statePending, Kind: kind, Env: req.Env, Name: req.Name,
		Size: req.Size, SHA256: req.SHA256,
		CreatedAt: now.UTC(), ExpiresAt: now.Add(ttl).Truncate(time.Second).UTC(),
		Actor: req.Actor, RequestID: req.RequestID,
		Network: req.Network, Visibility: req.Visibility,
	}, nil
}

func (rec *uploadRecord) info() UploadInfo {
	return UploadInfo{ID: rec.ID, Env: rec.Env, Network: rec.Network, Visibility: rec.Visibility}
}

func (rec *uploadRecord) issuedEvent() audit.Event {
	return audit.Event{
		Type: audit.TypeUploadURLIssued, Actor: rec.Actor, Resource: "upload/" + rec.ID,
		Decision: audit.Allow, RequestID: rec.RequestID,
		Details: map[string]string{
			"kind": string(rec.Kind), "env": rec.Env, "name": rec.Name,
			"size": strconv.FormatInt(rec.Size, 10), "sha256": rec.SHA256,
			"expires": rec.ExpiresAt.Format(time.RFC3339),
		},
	}
}

// notUploaded is Commit's answer for an upload whose bytes are not there.
func (rec *uploadRecord) notUploaded(now time.Time) error {
	if now.After(rec.ExpiresAt) {
		return fmt.Errorf("%w: upload %s expired at %s: nothing was uploaded", ErrUploadState, rec.ID, rec.ExpiresAt.Format(time.RFC3339))
	}
	return fmt.Errorf("%w: upload %s is pending: nothing was uploaded yet", ErrUploadState, rec.ID)
}

// finished is Commit's answer for an upload past its commit (committed,
// rejected), or in a state it does not know; nil for the others.
func (rec *uploadRecord) finished() error {
	switch rec.State {
	case statePending, stateUploading, stateReceived, stateCommitting:
		return nil
	case stateCommitted:
		return fmt.Errorf("%w: upload %s already committed as %s", ErrUploadState, rec.ID, rec.ArtifactID)
	case stateRejected:
		return fmt.Errorf("%w: upload %s rejected: %s", ErrUploadState, rec.ID, rec.Reason)
	default:
		return fmt.Errorf("%w: upload %s is in unknown state %q", ErrUploadState, rec.ID, rec.State)
	}
}

func (rec *uploadRecord) rejectedEvent(actor, requestID string, verr error) audit.Event {
	return audit.Event{
		Type: audit.TypeArtifactRejected, Actor: actor, Resource: "upload/" + rec.ID,
		Decision: audit.Deny, Reason: verr.Error(), RequestID: requestID,
		Details: map[string]string{"sha256": rec.SHA256, "kind": string(rec.Kind), "env": rec.Env},
	}
}

// artifact is the artifact a validated upload becomes, created at now,
// with the quarantine its digest has (the same bytes uploaded again are
// the same code: still quarantined).
func (rec *uploadRecord) artifact(info Info, now time.Time, q *Quarantine) (*Artifact, error) {
	id, err := randomID(artifactIDPrefix)
	if err != nil {
		return nil, fmt.Errorf("commit upload %s: %w", rec.ID, err)
	}
	art := &Artifact{
		ID: id, Digest: digestPrefix + rec.SHA256, Size: rec.Size, Kind: rec.Kind,
		Env: rec.Env, Name: rec.Name, Exports: info.Exports, Imports: info.Imports,
		ABIVersion: info.ABIVersion, CreatedAt: now.UTC(), Visibility: rec.Visibility,
		Quarantine: q,
	}
	if art.Exports == nil {
		art.Exports = []Export{}
	}
	return art, nil
}

func committedEvent(rec *uploadRecord, art *Artifact, actor, requestID string) audit.Event {
	return audit.Event{
		Type: audit.TypeArtifactCommitted, Actor: actor, Resource: "artifact/" + art.ID,
		Decision: audit.Allow, RequestID: requestID,
		Details: map[string]string{
			"digest": art.Digest, "kind": string(art.Kind), "env": art.Env,
			"upload": rec.ID, "size": strconv.FormatInt(art.Size, 10),
			"abi_version": strconv.FormatUint(uint64(art.ABIVersion), 10),
		},
	}
}

// failedEvent records that an action audited as allowed did not happen.
func failedEvent(typ, resource, actor, requestID, reason string) audit.Event {
	return audit.Event{
		Type: typ, Actor: actor, Resource: resource,
		Decision: audit.Error, Reason: reason, RequestID: requestID,
	}
}

func deletedEvent(a *Artifact, actor, requestID string) audit.Event {
	return audit.Event{
		Type: audit.TypeArtifactDeleted, Actor: actor, Resource: "artifact/" + a.ID,
		Decision: audit.Allow, RequestID: requestID,
		Details: map[string]string{"digest": a.Digest, "kind": string(a.Kind), "env": a.Env},
	}
}

// checkUploadID and checkArtifactID refuse a malformed id.
func checkUploadID(id string) error {
	if !validUploadID(id) {
		return fmt.Errorf("%w: upload id %q is not of the form up-<16 hex digits>", ErrInvalidArgument, id)
	}
	return nil
}

func checkArtifactID(id string) error {
	if !validArtifactID(id) {
		return fmt.Errorf("%w: artifact id %q is not of the form art-<16 hex digits>", ErrInvalidArgument, id)
	}
	return nil
}

// sortArtifacts orders a listing oldest first (by CreatedAt, then ID).
func sortArtifacts(out []*Artifact) {
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
}
