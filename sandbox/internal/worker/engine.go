package worker

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// engine holds one compiled module and a bounded set of instances of it.
// An instance runs one call at a time; idle ones are kept, with their linear
// memory, for the next batch; one that trapped or timed out is closed.
type engine struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	idle     chan *instance
	slots    chan struct{} // one token per instance that may exist
	mu       sync.Mutex
	drivers  map[string]wazero.CompiledModule // direct-ABI drivers by export and types
	// maxOutput bounds a batch's result region; 0 for no bound.
	maxOutput int64
	// http says the module imports udfhost_http: its calls carry their
	// egress state in their context.
	http bool
	// maxEgressBody bounds an egress request's body (the host's limit).
	maxEgressBody int
}

type engineConfig struct {
	MemoryLimitPages uint32
	MaxInstances     int
	CacheDir         string
	PreciseInterrupt bool
	MaxOutputBytes   int64
	MaxEgressBody    int
}

// RuntimeConfig is the wazero configuration workers compile with. Validation
// must compile with the same one: it is part of the compilation cache key.
func RuntimeConfig(preciseInterrupt bool) wazero.RuntimeConfig {
	return wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(preciseInterrupt)
}

func newEngine(ctx context.Context, cfg engineConfig, wasm []byte) (*engine, error) {
	rc := RuntimeConfig(cfg.PreciseInterrupt).WithMemoryLimitPages(cfg.MemoryLimitPages)
	if cfg.CacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("open compilation cache: %w", err)
		}
		rc = rc.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	// The artifact validator admitted only wasi_snapshot_preview1 imports
	// (no sockets), and udfhost_http for a connector (below). With no preopens, env, args or real clock configured
	// below, they give a Go guest's runtime what it needs to start and
	// nothing of the host.
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("instantiate wasi: %w", err)
	}
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, moduleFault{fmt.Errorf("compile module: %w", err)}
	}
	// udfhost_http exists only for a module that imports it (the artifact
	// validator admits that for connectors only); it reaches no network,
	// only the host, through the socket.
	http := imports(compiled, httpModule)
	if http {
		if err := instantiateHTTP(ctx, rt); err != nil {
			rt.Close(ctx)
			return nil, fmt.Errorf("instantiate %s: %w", httpModule, err)
		}
	}
	n := max(cfg.MaxInstances, 1)
	e := &engine{rt: rt, compiled: compiled, idle: make(chan *instance, n), slots: make(chan struct{}, n),
		drivers: map[string]wazero.CompiledModule{}, maxOutput: cfg.MaxOutputBytes, http: http,
		maxEgressBody: cmp.Or(min(cfg.MaxEgressBody, wire.MaxEgressBody), wire.MaxEgressBody)}
	return e, nil
}

func (e *engine) close(ctx context.Context) { e.rt.Close(ctx) }

// warm creates one instance ahead of the first call, so instantiation cost
// (a Go guest's runtime init) is paid at load, not on the first batch.
func (e *engine) warm(ctx context.Context) error {
	e.slots <- struct{}{}
	inst, err := e.newInstance(ctx)
	if err != nil {
		<-e.slots
		return err
	}
	e.idle <- inst
	return nil
}

type instance struct {
	mod     api.Module
	mem     api.Memory
	alloc   api.Function
	fns     map[string]api.Function
	inPtr   uint32
	inCap   uint32
	stack   []uint64
	drivers map[string]*driver
}

func (e *engine) newInstance(ctx context.Context) (*instance, error) {
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize")
	mod, err := e.rt.InstantiateModule(withMmapMemory(ctx), e.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate module: %w", err)
	}
	inst := &instance{mod: mod, mem: mod.Memory(), fns: map[string]api.Function{}, stack: make([]uint64, 8), drivers: map[string]*driver{}}
	if v := mod.ExportedFunction("udfhost_abi_version"); v != nil {
		res, err := v.Call(ctx)
		if err != nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("call udfhost_abi_version: %w", err)
		}
		if len(res) != 1 || uint32(res[0]) != 1 {
			mod.Close(ctx)
			return nil, fmt.Errorf("module declares batch ABI version %v, this host speaks 1", res)
		}
		inst.alloc = mod.ExportedFunction("udfhost_alloc")
	}
	return inst, nil
}

// acquire returns an idle instance or creates one if the limit allows,
// otherwise waits for one to come back.
func (e *engine) acquire(ctx context.Context) (*instance, error) {
	select {
	case inst := <-e.idle:
		return inst, nil
	default:
	}
	select {
	case inst := <-e.idle:
		return inst, nil
	case e.slots <- struct{}{}:
		inst, err := e.newInstance(ctx)
		if err != nil {
			<-e.slots
			return nil, err
		}
		return inst, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *engine) release(inst *instance) { e.idle <- inst }

// discard closes an instance whose state can no longer be trusted.
func (e *engine) discard(ctx context.Context, inst *instance) {
	for _, d := range inst.drivers {
		d.mod.Close(ctx)
	}
	inst.mod.Close(ctx)
	<-e.slots
}

// prepare gets an instance ready to call spec: the export is checked and a
// direct-ABI driver compiled (and cached on disk), so that the first batch
// does not pay for it.
func (e *engine) prepare(ctx context.Context, spec *wire.FuncSpec) error {
	inst, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer e.release(inst)
	f, err := inst.fn(spec.Export)
	if err != nil {
		return err
	}
	switch spec.ABI {
	case udf.ABIDirect:
		if err := checkDirect(f.Definition(), spec); err != nil {
			return err
		}
		_, err = e.driverFor(ctx, inst, spec)
		return err
	case udf.ABIBatch:
		if inst.alloc == nil {
			return &callError{wire.StatusBadRequest, "module does not implement the batch ABI (no udfhost_abi_version/udfhost_alloc)"}
		}
		return nil
	}
	return &callError{wire.StatusBadRequest, fmt.Sprintf("unknown ABI %d", spec.ABI)}
}

// callError is a failed call with the class the host reports it as.
type callError struct {
	status uint16
	msg    string
}

func (e *callError) Error() string { return e.msg }

// call runs spec on one input region and appends the output region to dst.
func (e *engine) call(ctx context.Context, spec *wire.FuncSpec, deadline time.Duration, input, dst []byte) ([]byte, error) {
	in, err := abi.ParseInput(input)
	if err != nil {
		return dst, &callError{wire.StatusBadRequest, err.Error()}
	}
	if len(in.Cols) != len(spec.Args) {
		return dst, &callError{wire.StatusBadRequest, fmt.Sprintf("batch has %d columns, function takes %d", len(in.Cols), len(spec.Args))}
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	inst, err := e.acquire(ctx)
	if err != nil {
		return dst, classify(err, deadline)
	}
	switch spec.ABI {
	case udf.ABIDirect:
		dst, err = e.callDirect(ctx, inst, spec, input, in.Rows, dst)
	case udf.ABIBatch:
		dst, err = inst.callBatch(ctx, spec, input, in.Rows, dst, e.maxOutput)
	default:
		err = &callError{wire.StatusBadRequest, fmt.Sprintf("unknown ABI %d", spec.ABI)}
	}
	if err != nil {
		var ce *callError
		if errors.As(err, &ce) && ce.status == wire.StatusBadRequest {
			e.release(inst)
			return dst, err
		}
		// Anything else may have left the instance in an unknown state.
		e.discard(context.Background(), inst)
		return dst, classify(err, deadline)
	}
	e.release(inst)
	return dst, nil
}

// classify turns a wazero error into the class and message the caller sees.
func classify(err error, deadline time.Duration) error {
	var ce *callError
	if errors.As(err, &ce) {
		return ce
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return &callError{wire.StatusTimeout, fmt.Sprintf("batch exceeded its deadline of %s", deadline)}
		case sys.ExitCodeContextCanceled:
			return &callError{wire.StatusTimeout, "batch cancelled by the caller"}
		}
		return &callError{wire.StatusTrap, fmt.Sprintf("guest exited with code %d", exit.ExitCode())}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &callError{wire.StatusTimeout, fmt.Sprintf("batch exceeded its deadline of %s", deadline)}
	}
	// wazero appends a multi-line wasm stack trace; its first line names
	// the trap ("wasm error: unreachable").
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return &callError{wire.StatusTrap, "guest trapped: " + msg}
}

func (inst *instance) fn(name string) (api.Function, error) {
	if f, ok := inst.fns[name]; ok {
		return f, nil
	}
	f := inst.mod.ExportedFunction(name)
	if f == nil {
		return nil, &callError{wire.StatusBadRequest, fmt.Sprintf("module has no export %q", name)}
	}
	inst.fns[name] = f
	return f, nil
}

func (inst *instance) callBatch(ctx context.Context, spec *wire.FuncSpec, input []byte, rows int, dst []byte, maxOutput int64) ([]byte, error) {
	if inst.alloc == nil {
		return dst, &callError{wire.StatusBadRequest, "module does not implement the batch ABI (no udfhost_abi_version/udfhost_alloc)"}
	}
	f, err := inst.fn(spec.Export)
	if err != nil {
		return dst, err
	}
	n := uint32(len(input))
	if n > inst.inCap {
		inst.stack[0] = uint64(n)
		if err := inst.alloc.CallWithStack(ctx, inst.stack); err != nil {
			return dst, err
		}
		ptr := uint32(inst.stack[0])
		if ptr == 0 || ptr%8 != 0 {
			return dst, &callError{wire.StatusBadOutput, fmt.Sprintf("udfhost_alloc(%d) returned unusable pointer %#x", n, ptr)}
		}
		inst.inPtr, inst.inCap = ptr, n
	}
	if !inst.mem.Write(inst.inPtr, input) {
		return dst, &callError{wire.StatusBadOutput, fmt.Sprintf("udfhost_alloc returned %#x, outside guest memory for %d bytes", inst.inPtr, n)}
	}
	inst.stack[0], inst.stack[1] = uint64(inst.inPtr), uint64(n)
	if err := f.CallWithStack(ctx, inst.stack); err != nil {
		return dst, err
	}
	packed := inst.stack[0]
	if packed == 0 {
		return dst, &callError{wire.StatusGuestError, "guest could not process the batch (returned 0)"}
	}
	outPtr, outLen := uint32(packed), uint32(packed>>32)
	if maxOutput > 0 && int64(outLen) > maxOutput {
		// Refused before a byte is copied: the host never holds it.
		return dst, &callError{wire.StatusBadOutput, fmt.Sprintf("result region of %d bytes exceeds the batch limit of %d bytes", outLen, maxOutput)}
	}
	mem, _ := inst.mem.Read(0, inst.mem.Size())
	out, err := abi.CopyOutput(dst, mem, outPtr, outLen, rows, spec.Result)
	if err != nil {
		return dst, &callError{wire.StatusBadOutput, err.Error()}
	}
	return out, nil
}

// directBase is where the input region starts in a driver's memory; it is
// not 0 so that 0 can mean "no validity bitmap".
const directBase = 64

type driver struct {
	mod   api.Module
	mem   api.Memory
	run   api.Function
	stack []uint64
}

// driverFor returns inst's driver for spec, compiling (once per engine) and
// instantiating (once per instance) it on first use.
func (e *engine) driverFor(ctx context.Context, inst *instance, spec *wire.FuncSpec) (*driver, error) {
	key := spec.Export + "\x00" + string(typeBytes(spec))
	if d, ok := inst.drivers[key]; ok {
		return d, nil
	}
	e.mu.Lock()
	compiled, ok := e.drivers[key]
	if !ok {
		wasm, err := driverModule(spec)
		if err == nil {
			compiled, err = e.rt.CompileModule(ctx, wasm)
		}
		if err != nil {
			e.mu.Unlock()
			return nil, &callError{wire.StatusBadRequest, fmt.Sprintf("build direct-ABI driver for %q: %v", spec.Export, err)}
		}
		e.drivers[key] = compiled
	}
	e.mu.Unlock()
	rctx := experimental.WithImportResolver(withMmapMemory(ctx), func(name string) api.Module {
		if name == "udf" {
			return inst.mod
		}
		return nil
	})
	mod, err := e.rt.InstantiateModule(rctx, compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, &callError{wire.StatusBadRequest, fmt.Sprintf("link direct-ABI driver for %q: %v", spec.Export, err)}
	}
	d := &driver{mod: mod, mem: mod.Memory(), run: mod.ExportedFunction("run"), stack: make([]uint64, 2*len(spec.Args)+3)}
	inst.drivers[key] = d
	return d, nil
}

func typeBytes(spec *wire.FuncSpec) []byte {
	b := make([]byte, 0, len(spec.Args)+1)
	for _, t := range spec.Args {
		b = append(b, byte(t))
	}
	return append(b, byte(spec.Result))
}

// callDirect runs a batch through the driver: the input region is copied
// into the driver's memory, the output region is laid out after it, and
// the driver fills values and validity.
func (e *engine) callDirect(ctx context.Context, inst *instance, spec *wire.FuncSpec, input []byte, rows int, dst []byte) ([]byte, error) {
	if _, err := inst.fn(spec.Export); err != nil {
		return dst, err
	}
	if err := checkDirect(inst.fns[spec.Export].Definition(), spec); err != nil {
		return dst, err
	}
	d, err := e.driverFor(ctx, inst, spec)
	if err != nil {
		return dst, err
	}
	outOff := align8(directBase + len(input))
	valuesOff := outOff + 48
	valuesLen := rows << widthShift(spec.Result)
	if spec.Result == udf.Boolean {
		valuesLen = (rows + 7) / 8
	}
	validityOff := align8(valuesOff + valuesLen)
	end := validityOff + (rows+7)/8
	if size := int(d.mem.Size()); end > size {
		if _, ok := d.mem.Grow(uint32((end - size + 65535) / 65536)); !ok {
			return dst, &callError{wire.StatusBadRequest, fmt.Sprintf("batch of %d bytes does not fit the memory limit", end)}
		}
	}
	mem, _ := d.mem.Read(0, d.mem.Size())
	copy(mem[directBase:], input)
	clear(mem[valuesOff:end])
	h := mem[outOff:valuesOff]
	clear(h)
	binary.LittleEndian.PutUint32(h[0:], abi.OutputMagic)
	binary.LittleEndian.PutUint32(h[4:], abi.Version)
	binary.LittleEndian.PutUint32(h[8:], uint32(rows))
	binary.LittleEndian.PutUint32(h[12:], uint32(spec.Result))
	binary.LittleEndian.PutUint32(h[16:], uint32(validityOff-outOff))
	binary.LittleEndian.PutUint32(h[24:], uint32(valuesOff-outOff))
	binary.LittleEndian.PutUint32(h[28:], uint32(valuesLen))

	st := d.stack
	st[0] = uint64(rows)
	for i := range spec.Args {
		desc := input[16+32*i:]
		validity := binary.LittleEndian.Uint32(desc[4:])
		st[1+2*i] = uint64(directBase + binary.LittleEndian.Uint32(desc[12:]))
		st[2+2*i] = 0
		if validity != 0 {
			st[2+2*i] = uint64(directBase + validity)
		}
	}
	st[2*len(spec.Args)+1] = uint64(valuesOff)
	st[2*len(spec.Args)+2] = uint64(validityOff)
	if err := d.run.CallWithStack(ctx, st); err != nil {
		return dst, err
	}
	out, err := abi.CopyOutput(dst, mem, uint32(outOff), uint32(end-outOff), rows, spec.Result)
	if err != nil {
		return dst, &callError{wire.StatusInternal, err.Error()}
	}
	return out, nil
}

func align8(n int) int { return (n + 7) &^ 7 }

// checkDirect re-checks, in the worker, that the export's wasm signature is
// the one the SQL signature maps to; the host checked it at CreateFunction.
func checkDirect(def api.FunctionDefinition, spec *wire.FuncSpec) error {
	params, results := def.ParamTypes(), def.ResultTypes()
	ok := len(params) == len(spec.Args) && len(results) == 1 && results[0] == api.ValueType(spec.Result.DirectWasmType())
	for i := 0; ok && i < len(params); i++ {
		ok = params[i] == api.ValueType(spec.Args[i].DirectWasmType())
	}
	if !ok {
		return &callError{wire.StatusBadRequest, fmt.Sprintf("export %q does not have the direct-ABI signature of its SQL types", spec.Export)}
	}
	return nil
}
