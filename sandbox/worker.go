package sandbox

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udfhost/udfhost/internal/cgroup"
	"github.com/udfhost/udfhost/sandbox/internal/jail"
	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// Errors a call can fail with; a *CallError unwraps to one of them.
var (
	ErrTimeout    = errors.New("batch deadline exceeded")
	ErrTrap       = errors.New("guest trapped")
	ErrBadOutput  = errors.New("guest returned an invalid result")
	ErrGuest      = errors.New("guest failed the batch")
	ErrBadRequest = errors.New("worker rejected the request")
	ErrWorkerDied = errors.New("worker process died")
	// ErrOverloaded means the worker's queue is full; the caller should back
	// off (see RetryAfter) rather than queue without limit.
	ErrOverloaded = errors.New("worker is overloaded")
)

// CallError is a failed call: Class is one of the Err* sentinels, Msg the
// detail a caller may show.
type CallError struct {
	Class error
	Msg   string
	// Violation is set when the worker was killed by a native layer
	// (seccomp, a cgroup or rlimit limit) rather than stopped by wazero.
	Violation *Violation
}

// Violation says which native layer killed a worker and why.
type Violation struct {
	Layer   string `json:"layer"`             // "seccomp", "cgroup", "rlimit"
	Syscall string `json:"syscall,omitempty"` // for seccomp: the syscall's name, from SIGSYS info
	Limit   string `json:"limit,omitempty"`   // for limits: "memory", "pids", ...
	Detail  string `json:"detail,omitempty"`
}

func (e *CallError) Error() string { return e.Msg }
func (e *CallError) Unwrap() error { return e.Class }

// IsViolation reports whether err means the guest misbehaved (trap, timeout,
// bad output, crash) as opposed to a bad request or a caller's cancellation.
func IsViolation(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, ErrTrap) || errors.Is(err, ErrBadOutput) ||
		errors.Is(err, ErrGuest) || errors.Is(err, ErrWorkerDied)
}

// Config says what a worker runs and under which limits.
type Config struct {
	Identity         string // SPIFFE ID of the pod; the worker runs nothing else
	Module           []byte // verified wasm bytes
	MemoryLimitPages uint32 // per instance, 64 KiB pages
	MaxInstances     int    // concurrent batches in the worker
	CacheDir         string // wazero compilation cache; "" for none
	// PreciseInterrupt has wazero stop a batch at its deadline inside the
	// worker (WithCloseOnContextDone). Without it guest code runs without
	// cancellation checks and the host kills the worker at the deadline.
	PreciseInterrupt bool
	Exe              string // binary to re-execute; default /proc/self/exe
	Args             []string
	// MaxInFlight bounds the batches sent to the worker and not yet
	// answered (running or queued in the worker); more are refused with
	// ErrOverloaded. Default 4 × MaxInstances.
	MaxInFlight  int
	Stderr       io.Writer     // the worker's stderr; default discarded
	StartTimeout time.Duration // default 30 s (a cold compile of a Go guest takes ~1 s)
	// InitDeadline bounds the guest's own start (its start function and
	// runtime init in the first instance), once compilation is done;
	// default 5 s. A module that overruns it is refused.
	InitDeadline time.Duration
	// MaxOutputBytes bounds one batch's result region; a guest returning
	// more fails the batch (ErrBadOutput) before anything is copied.
	MaxOutputBytes int64
	// MaxEgress bounds the egress requests (udfhost_http) of the worker's
	// calls being handled at once; more are refused at once as
	// overloaded. Default 2 × MaxInstances (an instance waits for one
	// request at a time).
	MaxEgress int
	// MaxEgressBody bounds a request body the host accepts from the
	// worker; default 1 MiB, at most 16 MiB (the protocol's bound). A
	// larger one is refused as malformed, never read into memory beyond
	// this bound.
	MaxEgressBody int

	compileOnly bool // set by Precompile
	// IDs hands out the per-worker host uid/gid blocks of the user
	// namespace. Nil: the worker gets no namespaces (as when not root).
	IDs *IDPool
	// Strict refuses a worker that reports any layer inactive, naming it.
	Strict bool
	// Cgroups, if set, gives each worker a cgroup with Limits; nil
	// reports the layer inactive.
	Cgroups *cgroup.Manager
	Limits  cgroup.Limits
	// MeasureSyscalls runs the worker without its seccomp filter, marking
	// where it would go (scripts/measure-syscalls.sh). Never with Strict.
	MeasureSyscalls bool
}

// ErrModule means a worker refused its module for the module's own fault:
// it does not compile, instantiate or start under its pool's limits. Any
// other Start failure is the host's (socketpair, exec, ids, cgroups, a
// missing layer, a worker that died).
var ErrModule = errors.New("module cannot run")

// ErrLayerMissing means strict mode refused a worker because one of its
// isolation layers could not be installed.
var ErrLayerMissing = errors.New("sandbox layer missing")

// Worker is the host's handle on one worker process.
type Worker struct {
	identity string
	cmd      *exec.Cmd
	conn     net.Conn
	w        *wire.Writer
	info     wire.LoadedInfo
	spawned  time.Time
	startDur time.Duration // from exec to a warm instance
	loadDur  time.Duration // from handing over the module to a warm instance

	nextID   atomic.Uint64
	inFlight chan struct{} // one token per unanswered call
	// svcNanos is a moving average of call durations, for retry hints.
	svcNanos  atomic.Int64
	instances int
	precise   bool
	// killedFor says why the host killed the worker, for the batches that
	// were in flight with the one that overran.
	killedFor atomic.Pointer[string]
	mu        sync.Mutex
	pending   map[uint64]*pendingCall // nil once the worker is gone
	done      chan struct{}
	exitErr   error // why the worker is gone; set before done is closed
	violation *Violation
	stderr    *stderrWatch
	ids       *IDPool
	hostID    uint32 // first host id of the worker's block; 0 without a user namespace
	group     *cgroup.Group
	cgMode    string        // e.g. "hybrid memory,pids,cpu"
	cgErr     error         // why the worker has no cgroup
	events    cgroup.Events // what hit a limit, read when the worker is reaped
	// maxResult bounds an answer frame; wireErr is set when a worker broke
	// the protocol (an oversized frame) and was killed for it.
	maxResult uint32
	wireErr   error
	egress    egressConfig
}

type result struct {
	status  uint16
	payload []byte
	err     error // set by the host itself (watchdog, death): overrides status
}

// Start launches a worker for cfg.Identity, hands it the module and waits
// until it has compiled it, jailed itself and warmed an instance.
func Start(ctx context.Context, cfg Config) (*Worker, error) {
	w, err := spawn(cfg)
	if err != nil {
		return nil, fmt.Errorf("start worker %s: %w", cfg.Identity, err)
	}
	if err := w.assign(ctx, cfg); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", cfg.Identity, err)
	}
	return w, nil
}

// spawn starts a worker process that waits for its module. It belongs to
// no identity yet, so it can be started ahead of need (see Spares).
func spawn(cfg Config) (*Worker, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	hostEnd, childEnd := os.NewFile(uintptr(fds[0]), "worker-host"), os.NewFile(uintptr(fds[1]), "worker-child")
	defer childEnd.Close()
	conn, err := net.FileConn(hostEnd)
	hostEnd.Close()
	if err != nil {
		return nil, err
	}
	exe, args := cfg.Exe, cfg.Args
	if exe == "" {
		exe = "/proc/self/exe"
	}
	if args == nil {
		args = []string{"worker"}
	}
	cmd := exec.Command(exe, args...)
	cmd.ExtraFiles = []*os.File{childEnd}
	cmd.Env = []string{} // nothing of the host's environment (tokens, paths) leaks in
	cmd.Dir = "/"
	watch := newStderrWatch(cfg.Stderr)
	cmd.Stderr = watch
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var hostID uint32
	if cfg.IDs != nil && canJail() {
		// New namespaces need privilege; without them the worker reports
		// those layers inactive (see jail.Setup) and strict mode refuses it.
		if hostID, err = cfg.IDs.get(); err != nil {
			conn.Close()
			return nil, err
		}
		jail.Namespaces(cmd.SysProcAttr, hostID)
		cmd.Env = []string{jail.Env}
	}
	spawned := time.Now()
	if err := cmd.Start(); err != nil {
		conn.Close()
		if hostID != 0 {
			cfg.IDs.put(hostID)
		}
		return nil, err
	}
	w := &Worker{cmd: cmd, conn: conn, w: wire.NewWriter(conn), spawned: spawned, stderr: watch,
		ids: cfg.IDs, hostID: hostID, pending: map[uint64]*pendingCall{}, done: make(chan struct{})}
	w.joinCgroup(cfg)
	return w, nil
}

// assign gives a spawned worker its identity and module; on failure the
// process is killed and reaped.
func (w *Worker) assign(ctx context.Context, cfg Config) error {
	w.identity = cfg.Identity
	w.precise = cfg.PreciseInterrupt
	w.instances = max(cfg.MaxInstances, 1)
	maxInFlight := cfg.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = 4 * w.instances
	}
	w.inFlight = make(chan struct{}, maxInFlight)
	w.maxResult = wire.MaxFrame
	w.egress = egressConfig{slots: make(chan struct{}, cmp.Or(cfg.MaxEgress, 2*w.instances)),
		maxBody: min(cmp.Or(cfg.MaxEgressBody, defaultMaxEgressBody), wire.MaxEgressBody)}
	w.egress.maxFrame = uint32(wire.MaxEgressFrame - wire.MaxEgressBody + w.egress.maxBody)
	if cfg.MaxOutputBytes > 0 && cfg.MaxOutputBytes+(64<<10) < wire.MaxFrame {
		w.maxResult = uint32(cfg.MaxOutputBytes + 64<<10) // room for an error text
	}
	loadStart := time.Now()
	// Limits first: the compile and the cache copy are charged to them.
	cg := w.limit(cfg)
	err := w.load(ctx, cfg)
	w.info.Layers = append(w.info.Layers, cg)
	if err == nil && cfg.Strict {
		err = strictCheck(w.info.Layers)
	}
	if err != nil {
		w.kill()
		w.reap()
		return err
	}
	w.startDur = time.Since(w.spawned)
	w.loadDur = time.Since(loadStart)
	go w.readLoop()
	return nil
}

// joinCgroup puts a just-spawned worker in a cgroup of its own. It is done
// at spawn because moving a process between cgroups waits for an RCU
// grace period (~10 ms here): a spare worker pays it before it is needed.
// A spare gets limits for the smallest pod until assign sets its own.
func (w *Worker) joinCgroup(cfg Config) {
	if cfg.Cgroups == nil {
		w.cgErr = errors.New("cgroups not available to the host")
		return
	}
	g, err := cfg.Cgroups.Create(fmt.Sprintf("worker-%d", w.cmd.Process.Pid), cgroupLimits(cfg))
	if err == nil {
		if err = g.Add(w.cmd.Process.Pid); err != nil {
			g.Delete()
		}
	}
	if err != nil {
		w.cgErr = err
		return
	}
	w.group, w.cgMode = g, cfg.Cgroups.Mode()+" "+strings.Join(cfg.Cgroups.Controllers(), ",")
}

// cgroupLimits are cfg's limits or, for a spare not yet given a pod,
// those of the smallest pod.
func cgroupLimits(cfg Config) cgroup.Limits {
	if cfg.Limits == (cgroup.Limits{}) {
		return PodLimits(16, 1)
	}
	return cfg.Limits
}

// limit sets the pod's own limits on the worker's cgroup and reports the
// layer.
func (w *Worker) limit(cfg Config) Layer {
	if w.group == nil {
		return Layer{Name: LayerCgroups, Detail: fmt.Sprint(w.cgErr)}
	}
	l := cgroupLimits(cfg)
	if err := w.group.Update(l); err != nil {
		return Layer{Name: LayerCgroups, Detail: err.Error()}
	}
	return Layer{Name: LayerCgroups, Active: true, Detail: fmt.Sprintf("%s: memory %d MiB, pids %d, cpu %.1f",
		w.cgMode, l.MemoryBytes>>20, l.Pids, l.CPUQuota)}
}

// strictCheck names the first layer a worker could not install.
func strictCheck(layers []Layer) error {
	want := []string{LayerWazero, LayerUserNS, LayerNamespaces, LayerLandlock, LayerRlimits, LayerNoNewPrivs, LayerSeccomp, LayerCgroups}
	for _, name := range want {
		found := false
		for _, l := range layers {
			if l.Name == name {
				found = true
				if !l.Active {
					return fmt.Errorf("%w: %s is not active (%s); strict mode refuses workers without it (serve --strict=false relaxes this on a development machine)", ErrLayerMissing, name, l.Detail)
				}
			}
		}
		if !found {
			return fmt.Errorf("%w: the worker did not report %s", ErrLayerMissing, name)
		}
	}
	return nil
}

func (w *Worker) load(ctx context.Context, cfg Config) error {
	lcfg := wire.LoadConfig{
		Identity: cfg.Identity, MemoryLimitPages: cfg.MemoryLimitPages,
		MaxInstances: cfg.MaxInstances, CacheDir: cfg.CacheDir, PreciseInterrupt: cfg.PreciseInterrupt,
		MeasureSyscalls: cfg.MeasureSyscalls, MaxOutputBytes: cfg.MaxOutputBytes,
		CompileOnly: cfg.compileOnly, GoMemoryLimit: goMemoryLimit(cfg),
		MaxEgressBody: w.egress.maxBody,
	}
	var fds []*os.File
	if w.hostID != 0 {
		// A jailed worker reads nothing of the host's: its artifact's
		// cache files come as descriptors, ahead of the load frame.
		lcfg.CacheDir = ""
		if cfg.CacheDir != "" {
			files, opened, err := wire.OpenCacheFiles(cfg.CacheDir)
			if err != nil {
				return err
			}
			defer func() {
				for _, f := range opened {
					f.Close()
				}
			}()
			lcfg.CacheFiles, fds = files, opened
		}
	}
	timeout := cfg.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	w.conn.SetDeadline(deadline)
	defer w.conn.SetDeadline(time.Time{})
	if w.hostID != 0 {
		if err := wire.SendFDs(w.conn, fds); err != nil {
			return fmt.Errorf("send cache descriptors: %w", err)
		}
	}
	if err := w.w.Send(wire.KindLoad, wire.StatusOK, 0, wire.EncodeLoad(lcfg, cfg.Module)...); err != nil {
		return fmt.Errorf("send module: %w", err)
	}
	var hdr [wire.HeaderSize]byte
	fr, _, err := wire.ReadFrame(w.conn, &hdr, nil)
	if err == nil && fr.Kind == wire.KindCompiled {
		initDeadline := cfg.InitDeadline
		if initDeadline == 0 {
			initDeadline = 5 * time.Second
		}
		if d := time.Now().Add(initDeadline); d.Before(deadline) {
			w.conn.SetDeadline(d)
		}
		fr, _, err = wire.ReadFrame(w.conn, &hdr, nil)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w: the module's start function did not return within %s", ErrTimeout, initDeadline)
		}
	}
	if err != nil {
		return fmt.Errorf("wait for worker to load: %w", err)
	}
	if fr.Kind != wire.KindLoaded {
		return fmt.Errorf("worker answered load with frame kind %d", fr.Kind)
	}
	w.info, err = wire.DecodeLoaded(fr.Payload)
	if err != nil {
		return err
	}
	if w.info.Error != "" {
		if w.info.ModuleFault {
			return fmt.Errorf("%w: %s", ErrModule, w.info.Error)
		}
		return fmt.Errorf("worker failed to load the module: %s", w.info.Error)
	}
	return nil
}

// InFlight is how many calls were sent to the worker and not yet
// answered: the pod registry evicts only workers with none.
func (w *Worker) InFlight() int { return len(w.inFlight) }

// RetryAfter estimates when a refused caller may find room: the time the
// worker needs to drain its current queue.
func (w *Worker) RetryAfter() time.Duration {
	d := time.Duration(w.svcNanos.Load()) * time.Duration(cap(w.inFlight)) / time.Duration(w.instances)
	return min(max(d, time.Millisecond), time.Second)
}

// Identity returns the pod identity the worker serves.
func (w *Worker) Identity() string { return w.identity }

// PID returns the worker's process id.
func (w *Worker) PID() int { return w.cmd.Process.Pid }

// Layers reports the isolation layers the worker says are active.
func (w *Worker) Layers() []Layer { return w.info.Layers }

// StartDuration is the time from exec to a warm instance; for a spare
// worker that includes the time it waited.
func (w *Worker) StartDuration() time.Duration { return w.startDur }

// LoadDuration is the time from handing over the module to a warm
// instance: what a new pod waits for when a spare process was ready.
func (w *Worker) LoadDuration() time.Duration { return w.loadDur }

// Dead reports whether the worker is gone or being killed: the registry
// must not hand it out any more.
func (w *Worker) Dead() bool {
	if w.killedFor.Load() != nil {
		return true
	}
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// Done is closed when the worker process is gone.
func (w *Worker) Done() <-chan struct{} { return w.done }

// Err says why the worker is gone, once Done is closed.
func (w *Worker) Err() error { <-w.done; return w.exitErr }

// Call runs spec on one batch v1 input region with the given deadline and
// appends the worker's output region to dst. It is CallReporting without
// a report of late failures.
func (w *Worker) Call(ctx context.Context, spec *FuncSpec, deadline time.Duration, input []byte) ([]byte, error) {
	return w.call(ctx, spec, deadline, input, 0, nil)
}

// CallReporting is Call for a caller that may stop waiting. If ctx ends
// before the batch does, CallReporting returns ctx's error at once, but
// the batch is not forgotten: its watchdog keeps running, so it is stopped
// no later than its deadline (with process interruption the worker is
// killed then, as for a caller that waits), and if it then fails as a
// violation (IsViolation) — its deadline, a trap, a native layer killing
// the worker while it ran — late is called once with that failure, from
// another goroutine. The failure belongs to this batch, not to whichever
// batch next finds the worker gone.
func (w *Worker) CallReporting(ctx context.Context, spec *FuncSpec, deadline time.Duration, input []byte, late func(error)) ([]byte, error) {
	return w.call(ctx, spec, deadline, input, 0, late)
}

// Prepare has the worker get ready to call spec (check the export, compile
// what the first call would otherwise compile), so a new function's first
// batch is as fast as the next ones.
func (w *Worker) Prepare(ctx context.Context, spec *FuncSpec) error {
	_, err := w.call(ctx, spec, 30*time.Second, nil, wire.FlagPrepare, nil)
	return err
}

// pendingCall is a batch sent to the worker and not yet finished. It
// lives in w.pending until exactly one of three ends it, each under w.mu:
// the worker's answer (readLoop), its watchdog, or the worker's death. The
// one that ends it stops the watchdog, gives the in-flight token back and
// hands over the result: to ch (buffered, so never blocking) or, once the
// caller has stopped waiting (abandoned), to late.
type pendingCall struct {
	ch        chan result
	watchdog  *time.Timer
	abandoned bool
	late      func(error)
	egress    *callEgress // nil for a call without an egress handler
}

// finish ends the pending call id with r, if it is still pending, and
// reports whether it was. Called with w.mu held; late runs on its own
// goroutine so that nothing here waits for a caller's code.
func (w *Worker) finish(id uint64, r result) bool {
	pc, ok := w.pending[id]
	if !ok {
		return false
	}
	delete(w.pending, id)
	w.end(pc, r)
	return true
}

func (w *Worker) end(pc *pendingCall, r result) {
	pc.watchdog.Stop()
	if pc.egress != nil {
		pc.egress.cancel() // its handlers' context ends with the call
	}
	<-w.inFlight
	if !pc.abandoned {
		pc.ch <- r
		return
	}
	if err := r.callErr(); err != nil && IsViolation(err) && pc.late != nil {
		go pc.late(err)
	}
}

func (w *Worker) call(ctx context.Context, spec *FuncSpec, deadline time.Duration, input []byte, flags byte, late func(error)) ([]byte, error) {
	select {
	case w.inFlight <- struct{}{}:
	default:
		return nil, &CallError{Class: ErrOverloaded, Msg: fmt.Sprintf("worker for %s has %d batches in flight; retry after %s",
			w.identity, cap(w.inFlight), w.RetryAfter())}
	}
	start := time.Now()
	defer func() {
		// EWMA with weight 1/8: cheap, and smooth enough for a hint.
		d := time.Since(start).Nanoseconds()
		old := w.svcNanos.Load()
		w.svcNanos.Store(old + (d-old)/8)
	}()
	id := w.nextID.Add(1)
	pc := &pendingCall{ch: make(chan result, 1), late: late, egress: newCallEgress(ctx)}
	// With precise interruption the worker enforces the deadline itself and
	// the watchdog only fires if it does not; then the process is beyond
	// trust. Otherwise the watchdog is how the deadline is enforced: guest
	// code has no cancellation checks, so the process is killed. It runs
	// whether or not the caller still waits: a batch that started is
	// stopped by its deadline.
	slack := 2 * time.Second
	if !w.precise {
		slack = 20 * time.Millisecond // the answer's trip back
	}
	w.mu.Lock()
	if w.pending == nil {
		w.mu.Unlock()
		<-w.inFlight
		return nil, &CallError{Class: ErrWorkerDied, Msg: w.deadMessage()}
	}
	pc.watchdog = time.AfterFunc(deadline+slack, func() { w.overran(id, deadline) })
	w.pending[id] = pc
	w.mu.Unlock()

	hdr := wire.AppendCallHeader(make([]byte, 0, 64), spec, uint32(deadline/time.Millisecond), flags)
	if err := w.w.Send(wire.KindCall, wire.StatusOK, id, hdr, input); err != nil {
		w.mu.Lock()
		w.finish(id, result{})
		w.mu.Unlock()
		return nil, &CallError{Class: ErrWorkerDied, Msg: fmt.Sprintf("send batch to worker: %v", err)}
	}
	select {
	case r := <-pc.ch:
		return r.value()
	case <-ctx.Done():
		w.mu.Lock()
		if _, ok := w.pending[id]; ok {
			pc.abandoned = true
			w.mu.Unlock()
			return nil, ctx.Err()
		}
		w.mu.Unlock()
		// It ended meanwhile: its result, a violation included, is the
		// caller's to report.
		return (<-pc.ch).value()
	}
}

// overran is the watchdog of pending call id: it was not answered within
// its deadline and slack, so the worker is killed.
func (w *Worker) overran(id uint64, deadline time.Duration) {
	msg := fmt.Sprintf("batch exceeded its deadline of %s; its worker was stopped", deadline)
	if w.precise {
		msg = fmt.Sprintf("batch exceeded its deadline of %s and the worker did not stop it; worker killed", deadline)
	}
	why := fmt.Sprintf("a batch exceeded its deadline of %s", deadline)
	w.mu.Lock()
	if _, ok := w.pending[id]; !ok {
		w.mu.Unlock()
		return // answered, or the worker died, meanwhile
	}
	// Marked dead before its caller learns of the timeout, so that no
	// next batch is handed this worker.
	w.killedFor.CompareAndSwap(nil, &why)
	w.finish(id, result{err: &CallError{Class: ErrTimeout, Msg: msg}})
	w.mu.Unlock()
	w.kill()
}

// value is what a call returns for r.
func (r result) value() ([]byte, error) {
	if err := r.callErr(); err != nil {
		return nil, err
	}
	return r.payload, nil
}

// callErr is r's failure, nil for a successful answer.
func (r result) callErr() error {
	if r.err != nil {
		return r.err
	}
	if r.status == wire.StatusOK {
		return nil
	}
	return &CallError{Class: statusClass(r.status), Msg: string(r.payload)}
}

func statusClass(s uint16) error {
	switch s {
	case wire.StatusTrap:
		return ErrTrap
	case wire.StatusTimeout:
		return ErrTimeout
	case wire.StatusBadOutput:
		return ErrBadOutput
	case wire.StatusGuestError:
		return ErrGuest
	case wire.StatusBadRequest:
		return ErrBadRequest
	}
	return ErrWorkerDied
}

// deadMessage says why the worker is gone. It is called once the worker
// is known to be gone (pending is nil, or by readLoop as it ends), when
// exitErr and violation are set.
func (w *Worker) deadMessage() string {
	if why := w.killedFor.Load(); why != nil {
		return fmt.Sprintf("worker %d for %s was stopped because %s", w.cmd.Process.Pid, w.identity, *why)
	}
	if w.violation != nil {
		return fmt.Sprintf("worker %d for %s was killed by the sandbox: %s", w.cmd.Process.Pid, w.identity, w.violation.Detail)
	}
	if w.exitErr != nil {
		return fmt.Sprintf("worker %d for %s died: %v", w.cmd.Process.Pid, w.identity, w.exitErr)
	}
	return fmt.Sprintf("worker %d for %s is gone", w.cmd.Process.Pid, w.identity)
}

// readLoop delivers the worker's answers. Nothing the worker sends can
// block it: each pending call takes one answer, into a buffered channel;
// an answer for an id that is not pending (never asked, or answered
// already) breaks the protocol, and the worker is killed for it. Egress
// requests (serveEgress) are answered without waiting for their handler;
// one over the egress frame limit is a broken protocol too.
func (w *Worker) readLoop() {
	var hdr [wire.HeaderSize]byte
	var err error
	// Buffered: under load one read(2) picks up several answers.
	r := bufio.NewReaderSize(w.conn, 64<<10)
	for {
		var fr wire.Frame
		fr, _, err = wire.ReadFrameLimits(r, &hdr, nil, w.maxResult, w.egress.maxFrame)
		if errors.Is(err, wire.ErrFrameTooLarge) {
			if binary.LittleEndian.Uint16(hdr[4:]) == wire.KindEgress {
				err = fmt.Errorf("%w (%w)", errEgressTooLarge, err)
			}
			w.wireErr = err
			w.kill() // it broke the protocol: beyond trust
		}
		if err != nil {
			break
		}
		if fr.Kind == wire.KindEgress {
			w.serveEgress(fr) // a guest's request during a call: the worker asks
			continue
		}
		w.mu.Lock()
		ok := w.finish(fr.ID, result{status: fr.Status, payload: fr.Payload})
		w.mu.Unlock()
		if !ok {
			err = fmt.Errorf("%w: answered request %d, which is not pending (unknown or answered already)", errProtocol, fr.ID)
			w.wireErr = err
			w.kill()
			break
		}
	}
	w.conn.Close()
	waitErr := w.reap()
	switch {
	case w.wireErr != nil:
		w.exitErr = fmt.Errorf("killed by the host: %w", w.wireErr)
		w.violation = w.classifyExit()
	case waitErr != nil:
		w.exitErr = waitErr
		w.violation = w.classifyExit()
	case !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
		w.exitErr = err
	}
	// What was still pending dies with the worker. An abandoned batch is
	// charged only when a native layer killed the worker while it ran: a
	// kill the host ordered for another batch is that batch's.
	w.mu.Lock()
	pending := w.pending
	w.pending = nil
	for _, pc := range pending {
		if pc.abandoned && w.violation == nil {
			pc.late = nil
		}
		w.end(pc, result{err: &CallError{Class: ErrWorkerDied, Msg: w.deadMessage(), Violation: w.violation}})
	}
	w.mu.Unlock()
	close(w.done)
}

// errProtocol means a worker sent what the wire protocol does not allow.
var errProtocol = errors.New("worker broke the protocol")

// errEgressTooLarge means a worker announced an egress frame over the
// limits it was given at load (an honest worker refuses such a request to
// its guest).
var errEgressTooLarge = errors.New("egress request over the egress limits")

// reap waits for the process and gives its id block back: the ids are
// free only once no process holds them.
func (w *Worker) reap() error {
	if w.cmd.ProcessState != nil {
		return nil // reaped already (Precompile's error path, then its cleanup)
	}
	err := w.cmd.Wait()
	if w.group != nil {
		w.events = w.group.Events()
		w.group.Delete()
		w.group = nil
	}
	if w.hostID != 0 {
		w.ids.put(w.hostID)
		w.hostID = 0
	}
	return err
}

// classifyExit says which native layer ended the worker, if one did: a
// seccomp trap (reported by the worker's SIGSYS handler, or a raw SIGSYS
// when the handler could not run), or a kill the host did not order.
func (w *Worker) classifyExit() *Violation {
	if errors.Is(w.wireErr, errEgressTooLarge) {
		return &Violation{Layer: "host", Limit: "egress size", Detail: "sent an " + w.wireErr.Error() + "; killed"}
	}
	if errors.Is(w.wireErr, wire.ErrFrameTooLarge) {
		return &Violation{Layer: "host", Limit: "result size", Detail: "sent an answer over the batch limit (" + w.wireErr.Error() + "); killed"}
	}
	if w.wireErr != nil {
		return &Violation{Layer: "host", Limit: "protocol", Detail: w.wireErr.Error() + "; killed"}
	}
	if w.killedFor.Load() != nil {
		return nil // the host killed it (deadline, shutdown)
	}
	st := w.cmd.ProcessState
	if st == nil {
		return nil
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	switch {
	case ws.Exited() && ws.ExitStatus() == jail.SigsysExitCode:
		v := &Violation{Layer: LayerSeccomp, Detail: "the seccomp filter trapped a forbidden syscall"}
		if nr := w.stderr.trappedSyscall(); nr >= 0 {
			v.Syscall = jail.SyscallName(nr)
			v.Detail = fmt.Sprintf("the seccomp filter trapped %s (syscall %d)", v.Syscall, nr)
		}
		return v
	case ws.Signaled() && ws.Signal() == syscall.SIGSYS:
		return &Violation{Layer: LayerSeccomp, Detail: "killed by SIGSYS"}
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL && w.events.OOMKills > 0:
		return &Violation{Layer: LayerCgroups, Limit: "memory", Detail: "killed for exceeding its cgroup memory limit"}
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		return &Violation{Layer: "kill", Detail: "killed by SIGKILL from outside the host (the kernel's OOM killer or an operator)"}
	case ws.Exited() && ws.ExitStatus() != 0 && w.events.PidsMax > 0:
		return &Violation{Layer: LayerCgroups, Limit: "pids", Detail: "stopped at its cgroup's pids limit"}
	case ws.Signaled() && (ws.Signal() == syscall.SIGXFSZ || ws.Signal() == syscall.SIGXCPU):
		return &Violation{Layer: LayerRlimits, Limit: ws.Signal().String(), Detail: "killed by " + ws.Signal().String()}
	}
	return nil
}

func (w *Worker) kill() {
	w.cmd.Process.Kill()
	w.conn.Close()
}

// Close stops the worker: in-flight batches finish, then the process exits
// on its own; it is killed if it has not within the grace period.
func (w *Worker) Close(ctx context.Context) error {
	if cw, ok := w.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		w.conn.Close()
	}
	grace := time.NewTimer(5 * time.Second)
	defer grace.Stop()
	why := "the host stopped it"
	select {
	case <-w.done:
	case <-grace.C:
		w.killedFor.CompareAndSwap(nil, &why)
		w.kill()
		<-w.done
	case <-ctx.Done():
		w.killedFor.CompareAndSwap(nil, &why)
		w.kill()
		<-w.done
	}
	return nil
}
