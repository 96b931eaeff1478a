package worker

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

	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/sandbox/internal/jail"
	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// workerFD is the inherited socket to the host (ExtraFiles[0]).
const workerFD = 3

// cacheSubdir is where a namespaced worker keeps its copy of the
// compilation cache, in its private tmpfs.
const cacheSubdir = jail.ScratchDir + "/wazero"

// TestHooks let the sandbox's own tests act, inside a real jailed worker,
// as code that escaped wasm or a broken worker would: the native layers
// are tested with real forbidden syscalls, not only with guest code
// wazero stops. Only the sandbox's test binary passes any to Main; the
// udfhost binary passes nil, so a release worker answers FlagTestHook
// calls as ordinary ones.
type TestHooks struct {
	// Call runs a FlagTestHook call: input in, its answer or error back.
	Call func(input []byte) ([]byte, error)
	// Raw may answer a FlagTestHook call itself on the wire (as a broken
	// worker would: twice, or for another id); it reports whether it did.
	// Replies to egress frames it sends reach EgressReply, not a guest.
	Raw func(w *wire.Writer, id uint64, input []byte) bool
	// EgressReply, if set, receives every KindEgressReply no guest waits
	// for (the replies to a Raw hook's own egress frames); the payload is
	// valid only during the call.
	EgressReply func(fr wire.Frame)
}

// Main is the body of the hidden `udfhost worker` command, in the worker
// process: it jails the process, then serves one module for one pod
// identity over the inherited socket until the host closes it. It
// returns the process exit code. hooks is nil but in the sandbox's tests.
func Main(hooks *TestHooks) int {
	f := os.NewFile(workerFD, "host-socket")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: no host socket on fd %d: %v\n", workerFD, err)
		return 2
	}
	defer conn.Close()
	// Jail first: a spare worker waits for its module already confined.
	j := jail.Setup()
	var fds []*os.File
	if j.Namespaced() {
		if fds, err = wire.RecvFDs(conn); err != nil {
			fmt.Fprintf(os.Stderr, "worker: %v\n", err)
			return 2
		}
	}
	if err := serveWorker(context.Background(), conn, j, fds, hooks); err != nil {
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
		return 1
	}
	return 0
}

func serveWorker(ctx context.Context, conn io.ReadWriter, j *jail.Jail, fds []*os.File, hooks *TestHooks) error {
	w := wire.NewWriter(conn)
	var hdr [wire.HeaderSize]byte
	fr, _, err := wire.ReadFrame(conn, &hdr, nil)
	if err != nil {
		return fmt.Errorf("read load frame: %w", err)
	}
	if fr.Kind != wire.KindLoad {
		return fmt.Errorf("first frame has kind %d, want load", fr.Kind)
	}
	eng, info, err := load(ctx, fr.Payload, j, fds, func() error { return w.Send(wire.KindCompiled, wire.StatusOK, fr.ID) })
	if err != nil {
		info.Error = err.Error()
		info.ModuleFault = errors.As(err, new(moduleFault))
	}
	if werr := w.Send(wire.KindLoaded, wire.StatusOK, fr.ID, wire.EncodeLoaded(&info)...); werr != nil || err != nil || eng == nil {
		return errors.Join(err, werr)
	}
	defer eng.close(ctx)

	var wg sync.WaitGroup
	defer wg.Wait()
	hub := newEgressHub(w, eng.maxEgressBody)
	// Buffered: under load one read(2) picks up several requests.
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		buf := getBuf(0)
		fr, buf, err := wire.ReadFrame(r, &hdr, buf)
		if err != nil {
			putBuf(buf)
			if errors.Is(err, io.EOF) {
				return nil // host closed the socket: orderly stop
			}
			return fmt.Errorf("read frame: %w", err)
		}
		if fr.Kind == wire.KindEgressReply {
			// The waiting instance keeps the buffer; a reply nobody waits
			// for (its call's deadline passed) is dropped.
			if !hub.deliver(fr) {
				if hooks != nil && hooks.EgressReply != nil {
					hooks.EgressReply(fr)
				}
				putBuf(buf)
			}
			continue
		}
		if fr.Kind != wire.KindCall {
			putBuf(buf)
			return fmt.Errorf("unexpected frame kind %d", fr.Kind)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer putBuf(buf)
			cctx := ctx
			if eng.http {
				cctx = withEgress(ctx, hub, fr.ID)
			}
			handleCall(cctx, eng, w, fr, hooks)
		}()
	}
}

func load(ctx context.Context, payload []byte, j *jail.Jail, fds []*os.File, compiled func() error) (*engine, wire.LoadedInfo, error) {
	info := wire.LoadedInfo{PID: os.Getpid(), Layers: j.Layers()}
	cfg, wasm, err := wire.DecodeLoad(payload)
	if err != nil {
		return nil, info, err
	}
	if cfg.GoMemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.GoMemoryLimit)
	}
	cacheDir := cfg.CacheDir
	if j.Namespaced() {
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
		j.InstallSeccomp(cfg.MeasureSyscalls)
		info.Layers = j.Layers()
	}
	// Compile before the filter goes up; run no guest code until after it.
	eng, err := newEngine(ctx, engineConfig{
		MemoryLimitPages: cfg.MemoryLimitPages,
		MaxInstances:     cfg.MaxInstances,
		CacheDir:         cacheDir,
		PreciseInterrupt: cfg.PreciseInterrupt,
		MaxOutputBytes:   cfg.MaxOutputBytes,
		MaxEgressBody:    cfg.MaxEgressBody,
	}, wasm)
	if err != nil {
		return nil, info, err
	}
	if cfg.CompileOnly {
		eng.close(ctx)
		info.Layers = j.Layers()
		if j.Namespaced() {
			info.CacheFiles, info.CacheData, err = readCacheFiles(cacheSubdir)
		}
		return nil, info, err
	}
	j.InstallSeccomp(cfg.MeasureSyscalls)
	info.Layers = j.Layers()
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

func handleCall(ctx context.Context, eng *engine, w *wire.Writer, fr wire.Frame, hooks *TestHooks) {
	var argBuf [16]udf.Type
	spec, deadlineMS, flags, input, err := wire.ParseCallHeader(fr.Payload, argBuf[:0])
	if err != nil {
		w.Send(wire.KindResult, wire.StatusBadRequest, fr.ID, []byte(err.Error()))
		return
	}
	if flags&wire.FlagProbe != 0 {
		var req wire.ProbeRequest
		json.Unmarshal(input, &req)
		p, err := jail.RunProbe(req)
		if err != nil {
			w.Send(wire.KindResult, wire.StatusBadRequest, fr.ID, []byte(err.Error()))
			return
		}
		out, _ := json.Marshal(p)
		w.Send(wire.KindResult, wire.StatusOK, fr.ID, out)
		return
	}
	if flags&wire.FlagTestHook != 0 && hooks != nil && hooks.Raw != nil && hooks.Raw(w, fr.ID, input) {
		return
	}
	if flags&wire.FlagTestHook != 0 && hooks != nil && hooks.Call != nil {
		out, err := hooks.Call(input)
		if err != nil {
			w.Send(wire.KindResult, wire.StatusBadRequest, fr.ID, []byte(err.Error()))
			return
		}
		w.Send(wire.KindResult, wire.StatusOK, fr.ID, out)
		return
	}
	if flags&wire.FlagPrepare != 0 {
		if err := eng.prepare(ctx, &spec); err != nil {
			w.Send(wire.KindResult, wire.StatusBadRequest, fr.ID, []byte(err.Error()))
			return
		}
		w.Send(wire.KindResult, wire.StatusOK, fr.ID)
		return
	}
	dst := getBuf(0)
	defer func() { putBuf(dst) }()
	dst, err = eng.call(ctx, &spec, time.Duration(deadlineMS)*time.Millisecond, input, dst[:0])
	if err != nil {
		status := wire.StatusInternal
		var ce *callError
		if errors.As(err, &ce) {
			status = ce.status
		}
		w.Send(wire.KindResult, status, fr.ID, []byte(err.Error()))
		return
	}
	w.Send(wire.KindResult, wire.StatusOK, fr.ID, dst)
}

// moduleFault marks a load error as the module's fault.
type moduleFault struct{ err error }

func (m moduleFault) Error() string { return m.err.Error() }
func (m moduleFault) Unwrap() error { return m.err }

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
