package artifacts

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/tetratelabs/wazero"
)

// compiler validates modules for both stores: a bounded number at once
// (the compile slots), each compiled into its digest's cache.
type compiler struct {
	slots      chan struct{} // one token per running compile
	queueWait  time.Duration
	cacheDir   string
	precompile func(ctx context.Context, wasm []byte, cacheDir string) error
	runtime    wazero.RuntimeConfig
}

// newCompiler applies the defaults of Config.MaxCompiles and
// Config.CompileQueueWait.
func newCompiler(maxCompiles int, queueWait time.Duration, cacheDir string, precompile func(context.Context, []byte, string) error, rc wazero.RuntimeConfig) *compiler {
	orDefault(&maxCompiles, max(runtime.NumCPU(), 1))
	orDefault(&queueWait, DefaultCompileQueueWait)
	return &compiler{
		slots: make(chan struct{}, maxCompiles), queueWait: queueWait,
		cacheDir: cacheDir, precompile: precompile, runtime: rc,
	}
}

// validate checks an upload and fills its compilation cache. With a
// Precompile hook, the host only walks the module (Describe: memory in
// proportion to its counts, not to its code) and the hook compiles it, in a
// jailed worker, which is also where its code is type-checked; without
// one, it is compiled in process (Validate). The caller holds a compile
// slot (slot).
func (c *compiler) validate(ctx context.Context, data []byte, kind Kind, digest string) (Info, error) {
	if c.precompile != nil {
		info, err := Describe(ctx, data, kind)
		if err != nil {
			return info, err
		}
		if err := c.precompile(ctx, data, CacheDirFor(c.cacheDir, digest)); err != nil {
			return info, err
		}
		return info, nil
	}
	var cache wazero.CompilationCache
	if c.cacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(CacheDirFor(c.cacheDir, digest)); err != nil {
			return Info{}, fmt.Errorf("open compilation cache: %w", err)
		}
		defer cache.Close(ctx)
	}
	return Validate(ctx, data, kind, cache, c.runtime)
}

// BusyError is the error of a Commit refused because every compile slot
// stayed taken for Config.CompileQueueWait. It wraps ErrBusy; nothing was
// changed, so the same Commit may be retried after RetryAfter.
type BusyError struct {
	Running    int           // compiles running (the cap)
	Waited     time.Duration // how long this one waited for a slot
	RetryAfter time.Duration // when trying again is reasonable
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%v: %d module compiles already running, none finished within %s; retry after %s",
		ErrBusy, e.Running, e.Waited, e.RetryAfter)
}

func (e *BusyError) Unwrap() error { return ErrBusy }

// slot takes one of the MaxCompiles slots (held by a Commit from reading
// the module to storing it), waiting at most CompileQueueWait, and returns
// its release.
func (c *compiler) slot(ctx context.Context) (func(), error) {
	release := func() { <-c.slots }
	select {
	case c.slots <- struct{}{}:
		return release, nil
	default:
	}
	wait := c.queueWait
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, &BusyError{Running: cap(c.slots), Waited: wait, RetryAfter: wait}
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a compile slot: %w", ctx.Err())
	}
}

// moduleFault says whether a validation error is the module's (it rejects
// the upload for good) rather than the host's or a cancellation (the
// upload stays committable).
func moduleFault(err error) bool {
	return errors.Is(err, ErrInvalidModule) || errors.Is(err, ErrDisallowedImport)
}
