package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"golang.org/x/sys/unix"

	"github.com/udfhost/udfhost/internal/udf"
)

// workerFD is the inherited socket to the host (ExtraFiles[0]).
const workerFD = 3

// loadConfig is the first frame's JSON: what the worker runs and under
// which limits. The module bytes follow it in the same frame, then the
// compilation cache files, in order.
type loadConfig struct {
	Identity         string `json:"identity"`
	MemoryLimitPages uint32 `json:"memory_limit_pages"`
	MaxInstances     int    `json:"max_instances"`
	ModuleSize       int    `json:"module_size"`
	// CacheDir is the host's compilation cache, used directly only by a
	// worker without namespaces; a jailed worker gets CacheFiles instead.
	CacheDir   string      `json:"cache_dir,omitempty"`
	CacheFiles []cacheFile `json:"cache_files,omitempty"`
	// PreciseInterrupt compiles with WithCloseOnContextDone so a batch past
	// its deadline is stopped inside wasm; otherwise the host kills the
	// worker at the deadline.
	PreciseInterrupt bool `json:"precise_interrupt,omitempty"`
	// MeasureSyscalls skips the seccomp filter and marks the moment it
	// would be installed, for scripts/measure-syscalls.sh.
	MeasureSyscalls bool `json:"measure_syscalls,omitempty"`
	// MaxOutputBytes bounds one batch's result region.
	MaxOutputBytes int64 `json:"max_output_bytes,omitempty"`
	// GoMemoryLimit is the worker's Go memory limit (debug.SetMemoryLimit):
	// its cgroup's memory less the guests' linear memories (outside the Go
	// heap, see mmapAllocator) and compiled code, so the collector works
	// harder before the cgroup would kill the worker. 0: none.
	GoMemoryLimit int64 `json:"go_memory_limit,omitempty"`
	// CompileOnly has the worker compile the module, answer with the
	// compilation cache it produced, and exit: no instance, no guest code.
	CompileOnly bool `json:"compile_only,omitempty"`
}

// measureMarker is the path a measuring worker probes where the filter
// would be installed: syscalls traced after it are what the filter must allow.
const measureMarker = "/udfhost-seccomp-installed-here"

// loadedInfo answers the load frame.
type loadedInfo struct {
	PID    int     `json:"pid"`
	Layers []Layer `json:"layers"`
	Error  string  `json:"error,omitempty"`
	// ModuleFault says Error is the module's own fault (it does not
	// compile, instantiate or start under its limits), not the worker's.
	ModuleFault bool `json:"module_fault,omitempty"`
	// CacheFiles (compile-only) describe the bytes after the JSON and a 0.
	CacheFiles []cacheFile `json:"cache_files,omitempty"`
	cacheData  [][]byte
}

// testHook, when set (only by this package's tests: it is assigned in a
// _test.go file, so release builds never carry one), runs a call with
// flagTestHook inside the jailed worker: the native layers are tested
// with real forbidden syscalls, not only with guest code wazero stops.
var testHook func(input []byte) ([]byte, error)

const flagTestHook = 4

// testRawHook, like testHook only ever set by this package's tests, may
// answer a flagTestHook call itself on the wire (as a broken worker would:
// twice, or for another id); it reports whether it did.
var testRawHook func(w *frameWriter, id uint64, input []byte) bool

// WorkerMain is the body of the hidden `udfhost worker` command: it serves
// one module for one pod identity over the inherited socket until the host
// closes it. It returns the process exit code.
func WorkerMain() int {
	f := os.NewFile(workerFD, "host-socket")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: no host socket on fd %d: %v\n", workerFD, err)
		return 2
	}
	defer conn.Close()
	// Jail first: a spare worker waits for its module already confined.
	j := setUp()
	var fds []*os.File
	if j.namespaced {
		if fds, err = recvFDs(conn); err != nil {
			fmt.Fprintf(os.Stderr, "worker: %v\n", err)
			return 2
		}
	}
	if err := serveWorker(context.Background(), conn, j, fds); err != nil {
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
		return 1
	}
	return 0
}

func serveWorker(ctx context.Context, conn io.ReadWriter, j *jail, fds []*os.File) error {
	w := &frameWriter{w: conn}
	var hdr [frameHeaderSize]byte
	fr, _, err := readFrame(conn, &hdr, nil)
	if err != nil {
		return fmt.Errorf("read load frame: %w", err)
	}
	if fr.kind != kindLoad {
		return fmt.Errorf("first frame has kind %d, want load", fr.kind)
	}
	eng, info, err := load(ctx, fr.payload, j, fds, func() error { return w.write(kindCompiled, statusOK, fr.id) })
	if err != nil {
		info.Error = err.Error()
		info.ModuleFault = errors.As(err, new(moduleFault))
	}
	msg, _ := json.Marshal(info)
	if werr := w.write(kindLoaded, statusOK, fr.id, append([][]byte{msg, {0}}, info.cacheData...)...); werr != nil || err != nil || eng == nil {
		return errors.Join(err, werr)
	}
	defer eng.close(ctx)

	var wg sync.WaitGroup
	defer wg.Wait()
	// Buffered: under load one read(2) picks up several requests.
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		buf := getBuf(0)
		fr, buf, err := readFrame(r, &hdr, buf)
		if err != nil {
			putBuf(buf)
			if errors.Is(err, io.EOF) {
				return nil // host closed the socket: orderly stop
			}
			return fmt.Errorf("read frame: %w", err)
		}
		if fr.kind != kindCall {
			putBuf(buf)
			return fmt.Errorf("unexpected frame kind %d", fr.kind)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer putBuf(buf)
			handleCall(ctx, eng, w, fr)
		}()
	}
}

func load(ctx context.Context, payload []byte, j *jail, fds []*os.File, compiled func() error) (*engine, loadedInfo, error) {
	info := loadedInfo{PID: os.Getpid(), Layers: j.layers}
	cfgJSON, rest, ok := cutByte(payload, 0)
	if !ok {
		return nil, info, errors.New("load frame has no module")
	}
	var cfg loadConfig
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, info, fmt.Errorf("decode load config: %w", err)
	}
	if cfg.ModuleSize < 0 || cfg.ModuleSize > len(rest) {
		return nil, info, fmt.Errorf("load frame: module size %d, frame holds %d bytes", cfg.ModuleSize, len(rest))
	}
	wasm := rest[:cfg.ModuleSize]
	if cfg.GoMemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.GoMemoryLimit)
	}
	cacheDir := cfg.CacheDir
	if j.namespaced {
		// The host's cache is out of reach; the worker compiles from its
		// own copy, in its private tmpfs, and nothing it writes there is
		// seen by the host or another worker.
		err := copyCacheFiles(cacheSubdir, cfg.CacheFiles, fds)
		for _, f := range fds {
			f.Close()
		}
		if err != nil {
			return nil, info, err
		}
		cacheDir = cacheSubdir
	}
	if cfg.CompileOnly {
		// Validation of an untrusted upload: the optimizing compiler is
		// the attack surface here, so it runs behind the filter too. The
		// cache directories are made first (mkdir is not on the list).
		if c, err := wazero.NewCompilationCacheWithDir(cacheDir); err == nil {
			c.Close(ctx)
		}
		installFilter(j, cfg.MeasureSyscalls)
		info.Layers = j.layers
	}
	// Compile before the filter goes up; run no guest code until after it.
	eng, err := newEngine(ctx, engineConfig{
		MemoryLimitPages: cfg.MemoryLimitPages,
		MaxInstances:     cfg.MaxInstances,
		CacheDir:         cacheDir,
		PreciseInterrupt: cfg.PreciseInterrupt,
		MaxOutputBytes:   cfg.MaxOutputBytes,
	}, wasm)
	if err != nil {
		return nil, info, err
	}
	if cfg.CompileOnly {
		eng.close(ctx)
		info.Layers = j.layers
		if j.namespaced {
			info.CacheFiles, info.cacheData, err = readCacheFiles(cacheSubdir)
		}
		return nil, info, err
	}
	installFilter(j, cfg.MeasureSyscalls)
	info.Layers = j.layers
	if err := compiled(); err != nil {
		eng.close(ctx)
		return nil, info, err
	}
	if err := eng.warm(ctx); err != nil {
		eng.close(ctx)
		return nil, info, moduleFault{err}
	}
	return eng, info, nil
}

// installFilter installs the seccomp filter or, when measuring, marks the
// point where it would go (scripts/measure-syscalls.sh).
func installFilter(j *jail, measure bool) {
	if measure {
		unix.Access(measureMarker, unix.F_OK)
		j.add(LayerSeccomp, errors.New("skipped: measuring syscalls"), "")
		return
	}
	j.add(LayerSeccomp, installSeccomp(), "allowlist "+SeccompProfileHash()+"; anything else traps and ends the worker")
}

func handleCall(ctx context.Context, eng *engine, w *frameWriter, fr frame) {
	var argBuf [16]udf.Type
	spec, deadlineMS, flags, input, err := parseCallHeader(fr.payload, argBuf[:0])
	if err != nil {
		w.write(kindResult, statusBadRequest, fr.id, []byte(err.Error()))
		return
	}
	if flags&flagProbe != 0 {
		var req probeRequest
		json.Unmarshal(input, &req)
		p, err := runProbe(req)
		if err != nil {
			w.write(kindResult, statusBadRequest, fr.id, []byte(err.Error()))
			return
		}
		out, _ := json.Marshal(p)
		w.write(kindResult, statusOK, fr.id, out)
		return
	}
	if flags&flagTestHook != 0 && testRawHook != nil && testRawHook(w, fr.id, input) {
		return
	}
	if flags&flagTestHook != 0 && testHook != nil {
		out, err := testHook(input)
		if err != nil {
			w.write(kindResult, statusBadRequest, fr.id, []byte(err.Error()))
			return
		}
		w.write(kindResult, statusOK, fr.id, out)
		return
	}
	if flags&flagPrepare != 0 {
		if err := eng.prepare(ctx, &spec); err != nil {
			w.write(kindResult, statusBadRequest, fr.id, []byte(err.Error()))
			return
		}
		w.write(kindResult, statusOK, fr.id)
		return
	}
	dst := getBuf(0)
	defer func() { putBuf(dst) }()
	dst, err = eng.call(ctx, &spec, time.Duration(deadlineMS)*time.Millisecond, input, dst[:0])
	if err != nil {
		status := statusInternal
		var ce *callError
		if errors.As(err, &ce) {
			status = ce.status
		}
		w.write(kindResult, status, fr.id, []byte(err.Error()))
		return
	}
	w.write(kindResult, statusOK, fr.id, dst)
}

// moduleFault marks a load error as the module's fault.
type moduleFault struct{ err error }

func (m moduleFault) Error() string { return m.err.Error() }
func (m moduleFault) Unwrap() error { return m.err }

func cutByte(b []byte, sep byte) (before, after []byte, ok bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// Frame buffers are recycled: a steady stream of batches of one shape then
// allocates nothing per batch.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuf(n int) []byte {
	b := *(bufPool.Get().(*[]byte))
	if cap(b) < n {
		b = make([]byte, 0, n)
	}
	return b[:0]
}

func putBuf(b []byte) {
	if cap(b) > 16<<20 {
		return // do not pin huge buffers
	}
	bufPool.Put(&b)
}
