package artifacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/udfhost/udfhost/internal/s3store"
)

// Bucket is what a BucketStore needs of an object store: the subset of
// *s3store.Store it uses, so that a test double could stand in.
// Keys are relative to the store's prefix.
type Bucket interface {
	PresignPut(ctx context.Context, key string, size int64, sha256hex string, expiry time.Duration) (string, map[string]string, error)
	PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
	Head(ctx context.Context, key string) (size int64, etag string, err error)
	Get(ctx context.Context, key string, w io.WriterAt) (int64, error)
	Copy(ctx context.Context, src, srcETag, dst string) error
	Delete(ctx context.Context, key string) error
	DeleteIfMatch(ctx context.Context, key, etag string) error
	PutIfAbsent(ctx context.Context, key string, body []byte) (string, error)
	PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error)
	GetRecord(ctx context.Context, key string, limit int64) ([]byte, string, error)
	List(ctx context.Context, prefix string) ([]s3store.Object, error)
	String() string
}

// BucketConfig configures a BucketStore. Bucket, HostID and Audit are
// required.
type BucketConfig struct {
	Bucket Bucket
	// HostID names this host in the upload records it claims (see
	// Commit), so that a restarted host knows its own unfinished commits.
	HostID string
	Audit  Auditor
	// The fields from here to DownloadTTL mean what Config's of the same
	// names do (see BucketConfig.local).
	Now func() time.Time
	// Upload limits.
	MaxSize            int64
	DefaultTTL, MaxTTL time.Duration
	// Compilation: how many at once, how, and where the caches go.
	// CacheDir also holds, under CacheDir/modules, the verified bytes of
	// each module downloaded, hashed again whenever read.
	MaxCompiles      int
	CompileQueueWait time.Duration
	Precompile       func(ctx context.Context, wasm []byte, cacheDir string) error
	Runtime          wazero.RuntimeConfig
	CacheDir         string
	// DownloadTTL is the lifetime of the pre-signed GET a module is
	// fetched through for a pod; default DefaultDownloadTTL.
	DownloadTTL time.Duration
	// CommitLease is how long a claim on an upload (state committing)
	// protects it; default DefaultCommitLease.
	CommitLease time.Duration
	// RequestTimeout bounds each request to the bucket (a whole download
	// included); one that does not answer in time fails its call with
	// ErrUnavailable. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// DefaultDownloadTTL is the lifetime of a module download URL: one pod
// start, with room for a slow transfer.
const DefaultDownloadTTL = time.Minute

// DefaultCommitLease is how long another host respects a claim on an
// upload before it takes the claimer for crashed: twice the 2-minute
// budget the server gives a jailed compile. The claim itself spans only a
// copy and two small writes (validation happens before it), so a live
// host never comes near it.
const DefaultCommitLease = 4 * time.Minute

var _ Bucket = (*s3store.Store)(nil)

// local is the local store's configuration of the same meaning, whose
// checks and defaults both stores share (Config.common).
func (c *BucketConfig) local() Config {
	return Config{
		Audit: c.Audit, MaxSize: c.MaxSize, DefaultTTL: c.DefaultTTL, MaxTTL: c.MaxTTL, Now: c.Now,
		CacheDir: c.CacheDir, Precompile: c.Precompile, Runtime: c.Runtime,
		MaxCompiles: c.MaxCompiles, CompileQueueWait: c.CompileQueueWait,
	}
}

// Keys in the bucket (see the package comment).
const (
	bucketUploads    = "uploads/"
	bucketObjects    = "artifacts/sha256/"
	bucketMeta       = "meta/"
	bucketQuarantine = "quarantine/"
	recordSuffix     = ".json"
	recordLimit      = 64 << 10 // largest record read back
	modulesSubdir    = "modules"
	maxPresignTTL    = 7 * 24 * time.Hour // SigV4's limit
)

// BucketStore is the artifact store of hosts that share one S3 bucket:
// uploads go straight to the bucket through SigV4 pre-signed PUTs, and
// records live next to the bytes, written with conditional requests, so
// every host sees every artifact and quarantine (after Sync) and two hosts
// never overwrite each other's change. It is safe for concurrent use.
type BucketStore struct {
	cfg    BucketConfig
	bucket timeoutBucket
	name   string
	limits uploadLimits
	comp   *compiler

	// mu serializes changes of the index: Sync holds it for its whole
	// run, so a change made meanwhile is applied after it, not lost.
	mu  sync.Mutex
	idx atomic.Pointer[bucketIndex]
	// unsaved are quarantines set here that the bucket has not taken yet
	// (it was unreachable): they are enforced here and written by Sync.
	unsaved map[string]*Quarantine

	cmu        sync.Mutex
	committing map[string]struct{} // uploads a Commit on this host is working on
}

// NewBucket opens the store on cfg.Bucket (an *s3store.Store from
// s3store.New, in a server): it reads every artifact and
// quarantine (Sync), and resolves the commits this host left unfinished
// and those whose claim outlived the lease (a crashed host's).
func NewBucket(ctx context.Context, cfg BucketConfig) (*BucketStore, error) {
	if cfg.Bucket == nil {
		return nil, errors.New("open artifact store: no bucket configured")
	}
	if cfg.HostID == "" {
		return nil, errors.New("open artifact store: no host id configured")
	}
	local := cfg.local()
	limits, comp, err := local.common()
	if err != nil {
		return nil, err
	}
	cfg.Now = local.Now
	orDefault(&cfg.DownloadTTL, DefaultDownloadTTL)
	orDefault(&cfg.CommitLease, DefaultCommitLease)
	orDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	if limits.maxTTL > maxPresignTTL {
		return nil, fmt.Errorf("open artifact store: maximum upload TTL %s exceeds the %s a SigV4 URL may live", limits.maxTTL, maxPresignTTL)
	}
	b := &BucketStore{
		cfg:        cfg,
		bucket:     timeoutBucket{Bucket: cfg.Bucket, d: cfg.RequestTimeout},
		name:       cfg.Bucket.String(),
		limits:     limits,
		comp:       comp,
		unsaved:    map[string]*Quarantine{},
		committing: map[string]struct{}{},
	}
	b.idx.Store(&bucketIndex{})
	if err := b.Sync(ctx); err != nil {
		return nil, fmt.Errorf("open artifact store: %w", err)
	}
	if err := b.recoverClaims(ctx); err != nil {
		return nil, fmt.Errorf("open artifact store: %w", err)
	}
	return b, nil
}

func (b *BucketStore) now() time.Time { return b.cfg.Now() }

func uploadBytesKey(id string) string  { return bucketUploads + id }
func uploadRecordKey(id string) string { return bucketUploads + id + recordSuffix }
func objectKey(hex string) string      { return bucketObjects + hex }
func metaKey(id string) string         { return bucketMeta + id + recordSuffix }
func quarantineKey(hex string) string  { return bucketQuarantine + hex + recordSuffix }

// storeError is a failure of the bucket: it wraps ErrUnavailable and the
// cause, and names the store and what was being done.
type storeError struct {
	store, op string
	err       error
}

func (e *storeError) Error() string {
	return "artifact store " + e.store + ": " + e.op + ": " + strings.TrimPrefix(e.err.Error(), "s3store: ")
}

func (e *storeError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

func (b *BucketStore) unavailable(op string, err error) error {
	return &storeError{store: b.name, op: op, err: err}
}

// readRecord reads the JSON record at key into v and returns its ETag;
// an absent record is s3store.ErrNotFound, unwrapped, for the caller to
// name.
func (b *BucketStore) readRecord(ctx context.Context, op, key string, v any) (string, error) {
	body, etag, err := b.bucket.GetRecord(ctx, key, recordLimit)
	if errors.Is(err, s3store.ErrNotFound) {
		return "", s3store.ErrNotFound
	}
	if err != nil {
		return "", b.unavailable(op, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return "", b.unavailable(op, fmt.Errorf("record %s is not valid JSON: %w", key, err))
	}
	return etag, nil
}

// writeRecord writes v at key: create-only when etag is "", else only
// over that version. A lost race is s3store.ErrExists or
// s3store.ErrPreconditionFailed (or ErrNotFound), unwrapped; other
// failures are the store's.
func (b *BucketStore) writeRecord(ctx context.Context, op, key string, v any, etag string) (string, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	var tag string
	if etag == "" {
		tag, err = b.bucket.PutIfAbsent(ctx, key, body)
	} else {
		tag, err = b.bucket.PutIfMatch(ctx, key, body, etag)
	}
	for _, lost := range []error{s3store.ErrExists, s3store.ErrPreconditionFailed, s3store.ErrNotFound} {
		if errors.Is(err, lost) {
			return "", lost
		}
	}
	if err != nil {
		return "", b.unavailable(op, err)
	}
	return tag, nil
}
