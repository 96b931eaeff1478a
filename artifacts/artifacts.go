// Package artifacts is the content-addressed store for uploaded WebAssembly
// modules. Bytes arrive through pre-signed upload URLs served by the Store
// itself (usable until they expire or a PUT stores the bytes), are checked against the declared size and sha256 while
// they stream in, and become an Artifact only when Commit has validated the
// module (it compiles, imports only what its kind allows, and exports
// functions).
//
// On disk, under Config.Dir:
//
//	uploads/<up-id>.json    upload record (pending, received, committed, rejected)
//	uploads/<up-id>.wasm    received bytes waiting for Commit
//	objects/sha256/<hex>    module bytes, one file per distinct content
//	meta/<art-id>.json      artifact metadata (with any quarantine); writing it is the commit point
//
// Every file is written atomically (temporary file, fsync, rename, fsync of
// the directory), so a crash leaves either the old or the new state.
//
// # In a bucket
//
// A BucketStore keeps the same things in one S3 bucket (under a prefix)
// that several hosts share; every key is chosen by a host, never by a
// user. It runs in each host process and trusts the bucket no more than a
// disk: bytes read back are hashed before any is validated or handed to a
// compiler, and records only name what the hosts wrote. Each write is conditional, so two hosts never overwrite each
// other's change: "create" is a PUT with If-None-Match: * (ErrExists if
// the key is taken), "update" a PUT with If-Match on the ETag read
// (a lost race if anyone wrote since).
//
//	uploads/<up-id>            the bytes, PUT by the client itself to a SigV4
//	                           pre-signed URL with the size, the sha256 and
//	                           If-None-Match: * signed in; once committed or
//	                           rejected, updated to an empty object (so the
//	                           key stays taken and the URL used up)
//	uploads/<up-id>.json       upload record: created by the host issuing the
//	                           URL (pending); updated by the committing host to
//	                           committing (claimed_by, claimed_at), then to
//	                           committed or rejected, or back to received if
//	                           its commit failed
//	artifacts/sha256/<hex>     module bytes: server-side copy of uploads/<up-id>,
//	                           only of the version (ETag) that was verified;
//	                           content addressed, so a copy that finds the key
//	                           taken is fine; never deleted by Delete
//	meta/<art-id>.json         artifact record: created last; its existence is
//	                           the commit point; deleted (If-Match) by Delete
//	quarantine/<hex>.json      quarantine of a digest: created by the first host
//	                           to quarantine the code (a later one keeps it),
//	                           deleted (If-Match) by Release
//
// A commit reads the upload record, checks and validates the bytes, claims
// the upload, copies the bytes, creates the artifact record and marks the
// upload committed. A crash before the artifact record leaves no artifact
// any host can see (at worst a claim and a copied object); a crash after
// it leaves an artifact whose upload still says committing. Either claim
// is resolved (the upload marked committed if the artifact record exists,
// else received again, so Commit can be retried) by the host that made it
// when it restarts or next commits the upload, and by any host once the
// claim is older than the lease (BucketConfig.CommitLease).
//
// Hosts converge through Sync: it lists meta/ and quarantine/ and reads
// only the records whose ETag changed, so what one host committed,
// deleted, quarantined or released is seen by another at its next Sync
// (and an artifact id it does not know yet is read from the bucket at
// once). Each host downloads module bytes for its pods through
// pre-signed GETs, checks them against their digest and keeps a verified
// copy under its own cache directory.
package artifacts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/names"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/presign"
)

// Sentinel errors. Every returned error wraps at most one of them, with
// detail naming the problem.
var (
	// ErrNotFound means no artifact, upload or object has that id or digest.
	ErrNotFound = errors.New("not found")
	// ErrInvalidArgument means a request field is missing or malformed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrInvalidModule means the uploaded bytes are not an acceptable
	// WebAssembly module.
	ErrInvalidModule = errors.New("invalid module")
	// ErrDisallowedImport means the module imports something its kind may
	// not use.
	ErrDisallowedImport = errors.New("disallowed import")
	// ErrUploadState means the upload is not in the state the operation
	// needs (nothing uploaded yet, already committed, rejected, expired…).
	ErrUploadState = errors.New("upload in wrong state")
	// ErrTooLarge means a declared or actual size exceeds the limit.
	ErrTooLarge = errors.New("too large")
	// ErrBusy means the host is compiling as many modules as it allows
	// and none finished in time; nothing was changed and the same call
	// may be retried later (see BusyError).
	ErrBusy = errors.New("host busy")
	// ErrConflict means another host changed the same record while this
	// call was changing it (a lost race on a shared store's conditional
	// write): nothing of this call was kept; look again and retry.
	ErrConflict = errors.New("changed by another host")
)

// Kind is what an artifact is for; it decides which imports it may have.
type Kind string

// Artifact kinds.
const (
	KindUDF       Kind = "udf"
	KindConnector Kind = "connector"
)

// Export is an exported function of a module with its wasm types ("i32",
// "i64", "f32", "f64", …).
type Export struct {
	Name    string   `json:"name"`
	Params  []string `json:"params"`
	Results []string `json:"results"`
}

// Artifact is a committed, validated module.
type Artifact struct {
	ID         string    `json:"id"`     // "art-" + 16 random hex chars, host chosen
	Digest     string    `json:"digest"` // "sha256:<hex>"
	Size       int64     `json:"size"`
	Kind       Kind      `json:"kind"`
	Env        string    `json:"env"`
	Name       string    `json:"name,omitempty"`
	Exports    []Export  `json:"exports"`               // sorted by name
	Imports    []string  `json:"imports,omitempty"`     // "module.name", sorted
	ABIVersion uint32    `json:"abi_version,omitempty"` // 1 for the batch ABI, else 0
	CreatedAt  time.Time `json:"created_at"`
	// Visibility is the visibility its environment had when the upload
	// URL was issued; "" (records written before it existed) is public.
	Visibility policies.Visibility `json:"visibility,omitempty"`
	// Quarantine is set while the artifact's code may not run (see
	// Store.Quarantine); callers must not modify it.
	Quarantine *Quarantine `json:"quarantine,omitempty"`
}

// Auditor records security-relevant events; an error means the event was
// not recorded and the action must be refused.
type Auditor interface {
	Record(ctx context.Context, e audit.Event) error
}

// Denials accounts for upload requests refused for their credential (a
// forged, malformed, expired or used-up URL): anyone can send those, so a
// server aggregates them per source instead of writing one record each
// (the gRPC edge's authentication failures go the same way). remote is the
// client's host:port.
type Denials interface {
	Deny(ctx context.Context, remote, resource, reason string)
}

// CacheDirFor is the compilation cache directory of one digest under root.
func CacheDirFor(root, digest string) string {
	return filepath.Join(root, strings.Replace(digest, ":", "-", 1))
}

// Config configures a Store. Dir, Signer and Audit are required.
type Config struct {
	Dir    string          // root, e.g. <data>/artifacts
	Signer *presign.Signer // signs upload URLs and verifies them in ServeHTTP
	Audit  Auditor
	// Denials, if set, takes the upload endpoint's credential refusals
	// instead of one auth.failed record each.
	Denials    Denials
	MaxSize    int64         // largest accepted module; default 100 MiB
	DefaultTTL time.Duration // upload URL lifetime when the request gives none; default 15m
	MaxTTL     time.Duration // longest upload URL lifetime; default 1h
	// UploadIdle is how long an upload body may make no progress before
	// the upload is rejected; default DefaultUploadIdle.
	UploadIdle time.Duration
	// ExpiryGrace is how long past its URL's expiry an upload body may
	// still be arriving before it is cut off; default DefaultExpiryGrace.
	ExpiryGrace time.Duration
	Now         func() time.Time
	// CacheDir, if set, holds one wazero compilation cache per digest
	// (CacheDirFor): validation compiles into it, and a jailed worker is
	// handed a copy of its own artifact's cache and nothing else.
	CacheDir string
	// Precompile, if set, compiles a validated module into cacheDir out of
	// process (the server uses a jailed worker); an error wrapping
	// ErrInvalidModule rejects the upload. Nil compiles in process.
	Precompile func(ctx context.Context, wasm []byte, cacheDir string) error
	// Runtime is the wazero configuration to validate with (see Validate);
	// nil for wazero's default.
	Runtime wazero.RuntimeConfig
	// MaxCompiles is how many Commits validate and compile at once (so
	// how many Precompile workers run, and how many modules the host holds
	// for them); default the number of CPUs. A Commit past it waits up to
	// CompileQueueWait (default DefaultCompileQueueWait) for a slot, then
	// fails with ErrBusy, changing nothing.
	MaxCompiles      int
	CompileQueueWait time.Duration
}

// DefaultCompileQueueWait is how long a Commit waits for a compile slot
// when Config.CompileQueueWait is zero.
const DefaultCompileQueueWait = 2 * time.Second

// Defaults for Config fields left zero.
const (
	DefaultMaxSize   = 100 << 20
	DefaultUploadTTL = 15 * time.Minute
	DefaultMaxTTL    = time.Hour
	filePerm         = 0o600
	dirPerm          = 0o700
	tmpPrefix        = ".tmp-"
	uploadIDPrefix   = "up-"
	artifactIDPrefix = "art-"
	digestPrefix     = "sha256:"
	uploadKeyPrefix  = "uploads/"
)

// Store is the artifact store and the handler of its pre-signed upload
// endpoint. It is safe for concurrent use by one process; two processes
// must not share a Dir.
type Store struct {
	cfg        Config
	uploadsDir string
	objectsDir string
	metaDir    string

	limits     uploadLimits
	comp       *compiler
	mu         sync.Mutex          // guards records, meta and objects on disk
	committing map[string]struct{} // uploads whose Commit is validating
	receiving  map[string]struct{} // uploads whose body a PUT is streaming
	// quarantined maps digest to quarantine. The map is replaced under mu,
	// never modified, so Quarantined reads it without a lock.
	quarantined atomic.Pointer[map[string]*Quarantine]
}

// New opens (creating if needed) the store under cfg.Dir. It also finishes
// what a crash may have left half done: temporary files are removed,
// uploads that were streaming are marked rejected, uploads whose artifact
// was committed are marked so, and objects no artifact refers to are
// deleted.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open artifact store: no directory configured")
	}
	if cfg.Signer == nil {
		return nil, errors.New("open artifact store: no URL signer configured")
	}
	limits, comp, err := cfg.common()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:        cfg,
		uploadsDir: filepath.Join(cfg.Dir, "uploads"),
		objectsDir: filepath.Join(cfg.Dir, "objects", "sha256"),
		metaDir:    filepath.Join(cfg.Dir, "meta"),
		committing: map[string]struct{}{},
		receiving:  map[string]struct{}{},
		limits:     limits,
		comp:       comp,
	}
	for _, d := range []string{s.uploadsDir, s.objectsDir, s.metaDir} {
		if err := os.MkdirAll(d, dirPerm); err != nil {
			return nil, fmt.Errorf("open artifact store: %w", err)
		}
	}
	if err := s.recover(); err != nil {
		return nil, fmt.Errorf("open artifact store: %w", err)
	}
	return s, nil
}

// recover repairs the on-disk state after a crash; see New.
func (s *Store) recover() error {
	for _, d := range []string{s.uploadsDir, s.objectsDir, s.metaDir} {
		entries, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				if err := os.Remove(filepath.Join(d, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	metas, err := s.loadAllMeta()
	if err != nil {
		return err
	}
	if err := s.recoverQuarantine(metas); err != nil {
		return err
	}
	committed := map[string]string{} // upload id -> artifact id
	digests := map[string]bool{}
	for _, m := range metas {
		if m.UploadID != "" {
			committed[m.UploadID] = m.ID
		}
		digests[strings.TrimPrefix(m.Digest, digestPrefix)] = true
	}
	entries, err := os.ReadDir(s.uploadsDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validUploadID(id) {
			continue
		}
		rec, err := s.loadUpload(id)
		if err != nil {
			return err
		}
		changed := false
		if art, ok := committed[id]; ok && rec.State != stateCommitted {
			rec.State, rec.ArtifactID, rec.Reason = stateCommitted, art, ""
			changed = true
		} else if rec.State == stateUploading {
			// An older version's in-progress mark: nothing was stored,
			// so the URL is usable again.
			rec.State, rec.Reason = statePending, ""
			changed = true
		} else if rec.State == stateReceived {
			if _, err := os.Stat(s.stagedPath(id)); errors.Is(err, fs.ErrNotExist) {
				rec.State, rec.Reason = stateRejected, "received bytes were lost"
				changed = true
			}
		}
		if changed {
			if err := s.saveUpload(rec); err != nil {
				return err
			}
		}
		if rec.State != stateReceived {
			if err := removeIfExists(s.stagedPath(id)); err != nil {
				return err
			}
		}
	}
	objs, err := os.ReadDir(s.objectsDir)
	if err != nil {
		return err
	}
	for _, e := range objs {
		if !digests[e.Name()] {
			// Written by a commit that crashed before its metadata.
			if err := os.Remove(filepath.Join(s.objectsDir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// metaRecord is the on-disk form of an artifact.
type metaRecord struct {
	Artifact
	UploadID string `json:"upload_id,omitempty"`
}

func (s *Store) metaPath(id string) string                       { return filepath.Join(s.metaDir, id+".json") }
func (s *Store) objectPath(hex string) string                    { return filepath.Join(s.objectsDir, hex) }
func (s *Store) uploadPath(id string) string                     { return filepath.Join(s.uploadsDir, id+".json") }
func (s *Store) stagedPath(id string) string                     { return filepath.Join(s.uploadsDir, id+".wasm") }
func (s *Store) now() time.Time                                  { return s.cfg.Now() }
func (s *Store) record(ctx context.Context, e audit.Event) error { return s.cfg.Audit.Record(ctx, e) }

// deny accounts for a request refused for its credential: through
// Config.Denials when set, else as one auth.failed record. Either way the
// request is refused; a denial that cannot be recorded refuses nothing
// more.
func (s *Store) deny(ctx context.Context, remote, resource, reason string) {
	if s.cfg.Denials != nil {
		s.cfg.Denials.Deny(ctx, remote, resource, reason)
		return
	}
	_ = s.record(ctx, audit.Event{
		Type: audit.TypeAuthFailed, Resource: resource, Decision: audit.Deny,
		Reason: reason, Details: map[string]string{"remote": remote},
	})
}

// MissingArtifact is the error Get returns for an id no artifact has: a
// server answers exactly so for an artifact its caller may not know of.
func MissingArtifact(id string) error {
	return fmt.Errorf("get artifact: %w", missingMeta(id))
}

func missingMeta(id string) error { return fmt.Errorf("%w: artifact %s", ErrNotFound, id) }

func (s *Store) loadMeta(id string) (*metaRecord, error) {
	b, err := os.ReadFile(s.metaPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missingMeta(id)
	}
	if err != nil {
		return nil, fmt.Errorf("read artifact %s: %w", id, err)
	}
	var m metaRecord
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read artifact %s: %w", id, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("read artifact %s: metadata names %q", id, m.ID)
	}
	return &m, nil
}

func (s *Store) loadAllMeta() ([]*metaRecord, error) {
	entries, err := os.ReadDir(s.metaDir)
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	var out []*metaRecord
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validArtifactID(id) {
			continue
		}
		m, err := s.loadMeta(id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func randomID(prefix string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// The grammars of ids and names are package names' (the API's, checked
// at the server's edge too), so that the store never takes what the API
// refuses or the other way round.
func validUploadID(id string) bool   { return names.UploadID.Check(id) == nil }
func validArtifactID(id string) bool { return names.ArtifactID.Check(id) == nil }

// parseDigest accepts "sha256:<64 lower-case hex>" and returns the hex.
func parseDigest(d string) (string, error) {
	h, ok := strings.CutPrefix(d, digestPrefix)
	if !ok || !presign.IsHexSHA256(h) {
		return "", fmt.Errorf("%w: digest %q is not sha256:<64 lower-case hex digits>", ErrInvalidArgument, d)
	}
	return h, nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
