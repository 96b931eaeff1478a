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
	"sync"
	"time"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// workerFD is the inherited socket to the host (ExtraFiles[0]).
const workerFD = 3

// loadConfig is the first frame's JSON: what the worker runs and under
// which limits. The module bytes follow it in the same frame.
type loadConfig struct {
	Identity         string `json:"identity"`
	MemoryLimitPages uint32 `json:"memory_limit_pages"`
	MaxInstances     int    `json:"max_instances"`
	CacheDir         string `json:"cache_dir,omitempty"`
	// PreciseInterrupt compiles with WithCloseOnContextDone so a batch past
	// its deadline is stopped inside wasm; otherwise the host kills the
	// worker at the deadline.
	PreciseInterrupt bool `json:"precise_interrupt,omitempty"`
}

// loadedInfo answers the load frame.
type loadedInfo struct {
	PID    int     `json:"pid"`
	Layers []Layer `json:"layers"`
	Error  string  `json:"error,omitempty"`
}

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
	if err := serveWorker(context.Background(), conn); err != nil {
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
		return 1
	}
	return 0
}

func serveWorker(ctx context.Context, conn io.ReadWriter) error {
	w := &frameWriter{w: conn}
	var hdr [frameHeaderSize]byte
	fr, _, err := readFrame(conn, &hdr, nil)
	if err != nil {
		return fmt.Errorf("read load frame: %w", err)
	}
	if fr.kind != kindLoad {
		return fmt.Errorf("first frame has kind %d, want load", fr.kind)
	}
	eng, info, err := load(ctx, fr.payload)
	if err != nil {
		info.Error = err.Error()
	}
	msg, _ := json.Marshal(info)
	if werr := w.write(kindLoaded, statusOK, fr.id, msg); werr != nil || err != nil {
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

func load(ctx context.Context, payload []byte) (*engine, loadedInfo, error) {
	info := loadedInfo{PID: os.Getpid()}
	cfgJSON, wasm, ok := cutByte(payload, 0)
	if !ok {
		return nil, info, errors.New("load frame has no module")
	}
	var cfg loadConfig
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, info, fmt.Errorf("decode load config: %w", err)
	}
	// Compile before the jail goes up (compilation needs mmap with exec and
	// the cache directory); run no guest code until after it.
	eng, err := newEngine(ctx, engineConfig{
		MemoryLimitPages: cfg.MemoryLimitPages,
		MaxInstances:     cfg.MaxInstances,
		CacheDir:         cfg.CacheDir,
		PreciseInterrupt: cfg.PreciseInterrupt,
	}, wasm)
	if err != nil {
		return nil, info, err
	}
	layers, err := applyJail(cfg)
	info.Layers = layers
	if err != nil {
		eng.close(ctx)
		return nil, info, fmt.Errorf("jail worker: %w", err)
	}
	if err := eng.warm(ctx); err != nil {
		eng.close(ctx)
		return nil, info, err
	}
	return eng, info, nil
}

func handleCall(ctx context.Context, eng *engine, w *frameWriter, fr frame) {
	var argBuf [16]udfhostv1.Type
	spec, deadlineMS, flags, input, err := parseCallHeader(fr.payload, argBuf[:0])
	if err != nil {
		w.write(kindResult, statusBadRequest, fr.id, []byte(err.Error()))
		return
	}
	if flags&flagProbe != 0 {
		var req probeRequest
		json.Unmarshal(input, &req)
		out, _ := json.Marshal(runProbes(req))
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
