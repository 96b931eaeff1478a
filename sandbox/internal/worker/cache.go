package worker

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// readCacheFiles reads the cache directory of one artifact, with
// wire.OpenCacheFiles' bounds (a compile-only worker sends its cache back).
func readCacheFiles(dir string) ([]wire.CacheFile, [][]byte, error) {
	files, fds, err := wire.OpenCacheFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	data := make([][]byte, len(fds))
	for i, f := range fds {
		data[i] = make([]byte, files[i].Size)
		if _, rerr := io.ReadFull(f, data[i]); rerr != nil && err == nil {
			err = fmt.Errorf("read compilation cache: %w", rerr)
		}
		f.Close()
	}
	if err != nil {
		return nil, nil, err
	}
	return files, data, nil
}

// copyCacheFiles lays the files passed as descriptors out under dir.
func copyCacheFiles(dir string, files []wire.CacheFile, fds []*os.File) error {
	if len(files) != len(fds) {
		return fmt.Errorf("load frame lists %d cache files, %d descriptors came", len(files), len(fds))
	}
	for i, f := range files {
		if !filepath.IsLocal(f.Name) {
			return fmt.Errorf("load frame: bad cache file %q", f.Name)
		}
		path := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("write compilation cache: %w", err)
		}
		dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("write compilation cache: %w", err)
		}
		n, err := io.Copy(dst, io.LimitReader(fds[i], int64(f.Size)+1))
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err == nil && n != int64(f.Size) {
			err = fmt.Errorf("%s has %d bytes, %d announced", f.Name, n, f.Size)
		}
		if err != nil {
			return fmt.Errorf("write compilation cache: %w", err)
		}
	}
	return nil
}
