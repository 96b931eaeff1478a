package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/atomicfile"
	"github.com/udfhost/udfhost/internal/s3store"
)

// Module returns the bytes of digest for the pod with SPIFFE ID pod,
// verified: from this host's copy under CacheDir if it has one (hashed
// again as it is read), else downloaded through a pre-signed GET of this
// one key, issued for this pod's start with a short expiry (DownloadTTL),
// so the fetch uses no credential but that URL. The bytes are checked against the digest
// before any is returned; a mismatch is audited as a security event and
// refused, and nothing is kept. Every download is audited with the pod
// and the digest.
func (b *BucketStore) Module(ctx context.Context, digest, pod string) ([]byte, error) {
	h, err := parseDigest(digest)
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	want := mustHex(h)
	if data := b.cachedModule(h, want); data != nil {
		return data, nil
	}
	size, err := b.moduleSize(ctx, digest)
	if err != nil {
		return nil, err
	}
	op := "download module " + digest + " for " + pod
	key := objectKey(h)
	url, err := b.bucket.PresignGet(ctx, key, b.cfg.DownloadTTL)
	if err != nil {
		return nil, b.unavailable(op, err)
	}
	buf := &memWriterAt{buf: make([]byte, 0, size)}
	n, err := b.bucket.downloadURL(ctx, url, buf, size)
	if errors.Is(err, s3store.ErrTooLarge) {
		return nil, b.mismatch(ctx, op, pod, digest, fmt.Sprintf("%s holds more than the %d bytes of %s", key, size, digest))
	}
	if err != nil {
		return nil, b.unavailable(op, err)
	}
	data := buf.buf
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], want) {
		return nil, b.mismatch(ctx, op, pod, digest, fmt.Sprintf("%s holds %d bytes hashing to sha256:%x, not %s", key, n, sum, digest))
	}
	if err := b.cfg.Audit.Record(ctx, audit.Event{
		Type: audit.TypeArtifactDownloaded, Actor: "udfhost", Pod: pod, Resource: "module/" + digest,
		Decision: audit.Allow, Details: map[string]string{"digest": digest, "bytes": strconv.FormatInt(n, 10)},
	}); err != nil {
		return nil, fmt.Errorf("%s: audit: %w", op, err)
	}
	b.keepModule(h, data)
	return data, nil
}

// mismatch audits and refuses bytes that are not the committed module: a
// security event (the bucket holds other code than was validated).
func (b *BucketStore) mismatch(ctx context.Context, op, pod, digest, what string) error {
	reason := "digest mismatch: " + what
	_ = b.cfg.Audit.Record(ctx, audit.Event{
		Type: audit.TypeArtifactDigestMismatch, Actor: "udfhost", Pod: pod, Resource: "module/" + digest,
		Decision: audit.Deny, Reason: reason, Details: map[string]string{"digest": digest, "key": objectKey(digest[len(digestPrefix):])},
	})
	return b.unavailable(op, errors.New(reason+"; refused"))
}

// moduleSize is the size the artifacts with digest have: the most a
// download of it may bring.
func (b *BucketStore) moduleSize(ctx context.Context, digest string) (int64, error) {
	metas, err := b.withDigest(ctx, digest)
	if err != nil {
		return 0, fmt.Errorf("read module: %w", err)
	}
	return metas[0].Size, nil
}

func (b *BucketStore) modulePath(h string) string {
	return filepath.Join(b.cfg.CacheDir, modulesSubdir, h)
}

// cachedModule returns this host's copy of module h if it has one that
// still hashes to want; a copy that does not is removed.
func (b *BucketStore) cachedModule(h string, want []byte) []byte {
	if b.cfg.CacheDir == "" {
		return nil
	}
	data, err := os.ReadFile(b.modulePath(h))
	if err != nil {
		return nil
	}
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], want) {
		_ = os.Remove(b.modulePath(h))
		return nil
	}
	return data
}

// keepModule stores verified bytes for the next pod start. A failure only
// costs a download later.
func (b *BucketStore) keepModule(h string, data []byte) {
	if b.cfg.CacheDir == "" {
		return
	}
	dir := filepath.Dir(b.modulePath(h))
	if os.MkdirAll(dir, dirPerm) == nil {
		_ = atomicfile.WriteFile(b.modulePath(h), data, filePerm)
	}
}

// memWriterAt collects a download of at most cap(buf) bytes, written in
// parts, possibly at once.
type memWriterAt struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memWriterAt) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	end := off + int64(len(p))
	if off < 0 || end > int64(cap(m.buf)) {
		return 0, fmt.Errorf("object longer than %d bytes", cap(m.buf))
	}
	if end > int64(len(m.buf)) {
		m.buf = m.buf[:end]
	}
	copy(m.buf[off:], p)
	return len(p), nil
}
