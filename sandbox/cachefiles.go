package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// cacheFile is one file of a compilation cache handed to a jailed worker:
// its path relative to the cache directory and its size.
type cacheFile struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

// maxCacheBytes bounds what a worker is sent: a pod's cache holds one
// module and its drivers.
const maxCacheBytes = 192 << 20

// readCacheFiles reads the cache directory of one artifact (the host's,
// per digest, so a worker is given nothing of another artifact).
func readCacheFiles(dir string) ([]cacheFile, [][]byte, error) {
	var files []cacheFile
	var data [][]byte
	total := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && path == dir {
				return filepath.SkipDir
			}
			return err
		}
		if !d.Type().IsRegular() || strings.HasSuffix(path, ".tmp") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if total += len(b); total > maxCacheBytes {
			return fmt.Errorf("compilation cache %s holds more than %d MiB", dir, maxCacheBytes>>20)
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, cacheFile{Name: rel, Size: len(b)})
		data = append(data, b)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read compilation cache: %w", err)
	}
	return files, data, nil
}

// writeCacheFiles lays the files sent in a load frame out under dir.
func writeCacheFiles(dir string, files []cacheFile, data []byte) error {
	for _, f := range files {
		if !filepath.IsLocal(f.Name) || f.Size < 0 || f.Size > len(data) {
			return fmt.Errorf("load frame: bad cache file %q (%d bytes)", f.Name, f.Size)
		}
		path := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("write compilation cache: %w", err)
		}
		if err := os.WriteFile(path, data[:f.Size], 0o600); err != nil {
			return fmt.Errorf("write compilation cache: %w", err)
		}
		data = data[f.Size:]
	}
	return nil
}
