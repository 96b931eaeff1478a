package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// ErrCompile means a module could not be compiled in its jailed worker:
// the compiler refused it, ran past its time, or the worker was killed
// by a limit while compiling. The module is at fault, not the host.
var ErrCompile = errors.New("module does not compile")

// Precompile compiles cfg.Module with the workers' runtime configuration
// inside a jailed, compile-only worker (every layer, seccomp included,
// before the compiler sees a byte) and stores the compilation cache it
// produced in cfg.CacheDir. wazero's optimizing compiler is the costliest
// and least bounded code an upload reaches; it runs here under the
// worker's cgroup and cfg.StartTimeout instead of in the host process.
// No instance is created and no guest code runs.
func Precompile(ctx context.Context, cfg Config) error {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = time.Minute
	}
	cfg.compileOnly = true
	cacheDir := cfg.CacheDir
	w, err := spawn(cfg)
	if err != nil {
		return fmt.Errorf("precompile: %w", err)
	}
	defer func() {
		w.kill()
		w.reap()
	}()
	cg := w.limit(cfg)
	err = w.load(ctx, cfg)
	w.info.Layers = append(w.info.Layers, cg)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: compiling took longer than %s", ErrCompile, cfg.StartTimeout)
	case err != nil && w.info.Error != "":
		return fmt.Errorf("%w: %s", ErrCompile, w.info.Error)
	case err != nil:
		// The worker died mid-compile: a limit or the filter, or a crash.
		w.kill()
		if werr := w.reap(); werr != nil {
			if v := w.classifyExit(); v != nil {
				return fmt.Errorf("%w: the compiling worker was killed: %s", ErrCompile, v.Detail)
			}
			return fmt.Errorf("%w: the compiling worker died: %v", ErrCompile, werr)
		}
		return fmt.Errorf("precompile: %w", err)
	}
	if cfg.Strict {
		if err := strictCheck(w.info.Layers); err != nil {
			return err
		}
	}
	return storeCacheFiles(cacheDir, w.info.CacheFiles, w.info.CacheData)
}

// storeCacheFiles writes what a compile-only worker produced into the
// host's cache of that artifact, each file whole or not at all. The bytes
// come from an untrusted process: names are checked, sizes bounded, and
// only workers of the same digest are ever handed them.
func storeCacheFiles(dir string, files []wire.CacheFile, data [][]byte) error {
	total := 0
	for i, f := range files {
		if total += len(data[i]); total > wire.MaxCacheBytes || !filepath.IsLocal(f.Name) {
			return fmt.Errorf("precompile: worker returned an unacceptable cache file %q", f.Name)
		}
		path := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("precompile: store cache: %w", err)
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
		if err != nil {
			return fmt.Errorf("precompile: store cache: %w", err)
		}
		_, err = tmp.Write(data[i])
		if err == nil {
			err = tmp.Close()
		} else {
			tmp.Close()
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("precompile: store cache: %w", err)
		}
	}
	return nil
}
