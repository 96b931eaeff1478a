package presign

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/udfhost/udfhost/internal/atomicfile"
)

// KeySize is the length in bytes of an HMAC signing key.
const KeySize = 32

// LoadOrCreateKey returns the signing key stored at path, creating it (32
// random bytes, mode 0600) if the file does not exist. Creation is atomic: the
// key is written to a temporary file, synced and hard-linked into place, so a
// crash or a concurrent caller never sees a partial key and two callers agree
// on one key. An existing file is refused if it is not a regular file, is not
// exactly KeySize bytes, or is readable or writable by group or others.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := loadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := createKey(path); err != nil {
		return nil, err
	}
	return loadKey(path)
}

func loadKey(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load signing key %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("load signing key %s: mode %#o gives access to group or others; want 0600", path, perm)
	}
	if fi.Size() != KeySize {
		return nil, fmt.Errorf("load signing key %s: %d bytes, want %d", path, fi.Size(), KeySize)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("load signing key %s: %d bytes, want %d", path, len(key), KeySize)
	}
	return key, nil
}

// createKey writes a fresh key to path unless a file already exists there.
// An existing file (from a concurrent caller) is not an error.
func createKey(path string) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	// Link fails if path exists, unlike rename: the first writer wins.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create signing key: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	return nil
}
