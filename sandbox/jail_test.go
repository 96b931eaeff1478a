package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/sandbox/internal/testmod"
	"github.com/udfhost/udfhost/sandbox/internal/wire"
	"github.com/udfhost/udfhost/sandbox/internal/worker"
)

// workerTestHooks are what the test binary, started as a worker, passes
// to worker.Main (TestMain); a release build passes none.
//
// Call issues the named syscall directly, with zero arguments, after the
// jail is up ("answer-bytes:N" answers N bytes instead, as a worker lying
// about its output). Raw answers like a broken or hostile peer:
// "answer-thrice" answers its request three times, "answer-unknown"
// answers an id never asked before answering its own.
func workerTestHooks() *worker.TestHooks {
	return &worker.TestHooks{Call: syscallHook, EgressReply: collectEgressReply,
		Raw: func(w *wire.Writer, id uint64, input []byte) bool {
			return rawAnswerHook(w, id, input) || rawEgressHook(w, id, input)
		}}
}

func syscallHook(input []byte) ([]byte, error) {
	if n, ok := strings.CutPrefix(string(input), "answer-bytes:"); ok {
		size, _ := strconv.Atoi(n)
		return make([]byte, size), nil // as a worker lying about its output
	}
	nr, err := seccomp.GetSyscallFromName(string(input))
	if err != nil {
		return nil, err
	}
	_, _, errno := unix.RawSyscall6(uintptr(nr), 0, 0, 0, 0, 0, 0)
	return []byte(fmt.Sprintf("returned errno %d (%v)", errno, errno)), nil
}

func rawAnswerHook(w *wire.Writer, id uint64, input []byte) bool {
	switch string(input) {
	case "answer-thrice":
		for i := 0; i < 3; i++ {
			w.Send(wire.KindResult, wire.StatusOK, id, []byte("again"))
		}
	case "answer-unknown":
		w.Send(wire.KindResult, wire.StatusOK, id+1<<40, []byte("nobody asked"))
		w.Send(wire.KindResult, wire.StatusOK, id, []byte("mine"))
	default:
		return false
	}
	return true
}

// TestForbiddenSyscallsKillTheWorker proves the seccomp layer on its own:
// wazero would stop guest code long before any of these, so the worker
// issues them itself. Each must end the worker with a violation naming
// the syscall, and the next worker must serve normally.
func TestForbiddenSyscallsKillTheWorker(t *testing.T) {
	if !canJail() {
		t.Skip("the jail needs root; make test runs as root")
	}
	ctx := context.Background()
	wasm := testmod.WAT(t, testmod.AddSpinBoomWAT)
	add := &FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: bigint2, Result: bigint2[0]}
	for _, name := range []string{
		"socket", "connect", "bind", "execve", "execveat", "ptrace", "mount", "umount2", "bpf", "keyctl",
		"add_key", "userfaultfd", "perf_event_open", "unshare", "setns", "chroot", "pivot_root",
		"setuid", "setgroups", "rt_sigaction", "kill", "fork", "vfork", "clone", "process_vm_readv",
		"open_by_handle_at", "init_module", "kexec_load", "prctl", "seccomp", "memfd_create", "io_uring_setup",
	} {
		t.Run(name, func(t *testing.T) {
			w := startWorker(t, testConfig(t, wasm))
			_, err := w.call(ctx, add, time.Second, []byte(name), wire.FlagTestHook, nil)
			var ce *CallError
			if !errors.As(err, &ce) || ce.Violation == nil {
				t.Fatalf("%s: worker not killed by the sandbox: %v", name, err)
			}
			if ce.Violation.Layer != LayerSeccomp || ce.Violation.Syscall != name {
				t.Fatalf("%s: violation %+v", name, ce.Violation)
			}
			if !errors.Is(err, ErrWorkerDied) {
				t.Fatalf("%s: class %v", name, ce.Class)
			}
		})
	}
	// clone3 is refused gracefully (ENOSYS) so glibc falls back to clone.
	w := startWorker(t, testConfig(t, wasm))
	out, err := w.call(ctx, add, time.Second, []byte("clone3"), wire.FlagTestHook, nil)
	if err != nil || string(out) != fmt.Sprintf("returned errno %d (%v)", unix.ENOSYS, unix.ENOSYS) {
		t.Fatalf("clone3: %q, %v", out, err)
	}
	if got, err := call(w, "add", time.Second, []int64{20}, []int64{22}); err != nil || got[0] != 42 {
		t.Fatalf("worker after clone3: %v, %v", got, err)
	}
}

// TestJailLayersHold checks from the host what the worker reports: its
// uid is the unprivileged per-worker id, distinct per worker, and it is
// in namespaces other than the host's.
func TestJailLayersHold(t *testing.T) {
	if !canJail() {
		t.Skip("the jail needs root; make test runs as root")
	}
	wasm := testmod.WAT(t, testmod.AddSpinBoomWAT)
	a := startWorker(t, testConfig(t, wasm))
	b := startWorker(t, testConfig(t, wasm))
	uid := func(w *Worker) int {
		st, err := os.Stat(fmt.Sprintf("/proc/%d", w.PID()))
		if err != nil {
			t.Fatal(err)
		}
		return int(st.Sys().(*syscall.Stat_t).Uid)
	}
	ua, ub := uid(a), uid(b)
	if ua < DefaultIDBase || ub < DefaultIDBase || ua == ub {
		t.Fatalf("worker uids %d and %d: want distinct ids from the pool", ua, ub)
	}
	for _, ns := range []string{"user", "net", "mnt", "pid", "ipc", "uts"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		worker, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", a.PID(), ns))
		if err != nil || host == worker {
			t.Errorf("namespace %s: host %s, worker %s (%v)", ns, host, worker, err)
		}
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.PID()))
	for _, want := range []string{"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !containsLine(string(status), want) {
			t.Errorf("worker status lacks %q", want)
		}
	}
}

func containsLine(s, line string) bool {
	for _, l := range strings.Split(s, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// TestCgroupMemoryLimitKillsTheWorker: a guest within its wasm memory
// limit but beyond its worker's cgroup memory limit is killed by the
// kernel, and the host names the limit.
func TestCgroupMemoryLimitKillsTheWorker(t *testing.T) {
	if !canJail() || testCgroups == nil {
		t.Skip("the jail needs root and cgroups; make test runs as root")
	}
	touch := testmod.WAT(t, `(module (memory 1)
  (func (export "touch") (param i64 i64) (result i64) (local $p i32)
    (drop (memory.grow (i32.const 4000)))
    (loop $l
      (i32.store (local.get $p) (i32.const 1))
      (local.set $p (i32.add (local.get $p) (i32.const 4096)))
      (br_if $l (i32.lt_u (local.get $p) (i32.const 262000000))))
    (i64.const 0)))`)
	cfg := testConfig(t, touch)
	cfg.MemoryLimitPages = 4096
	cfg.Limits.MemoryBytes = 96 << 20
	w := startWorker(t, cfg)
	_, err := call(w, "touch", 10*time.Second, []int64{1}, []int64{1})
	var ce *CallError
	if !errors.As(err, &ce) || ce.Violation == nil || ce.Violation.Layer != LayerCgroups || ce.Violation.Limit != "memory" {
		t.Fatalf("want a cgroup memory violation, got %v (%+v)", err, ce)
	}
}

// TestOutputOverBatchLimitIsRefused: a guest claiming a result region
// larger than the batch limit fails the batch before anything is copied.
func TestOutputOverBatchLimitIsRefused(t *testing.T) {
	big := testmod.WAT(t, `(module (memory (export "memory") 40)
  (func (export "udfhost_abi_version") (result i32) (i32.const 1))
  (func (export "udfhost_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "f") (param i32 i32) (result i64)
    (i64.or (i64.const 4096) (i64.shl (i64.const 2000000) (i64.const 32)))))`)
	cfg := testConfig(t, big)
	cfg.MaxOutputBytes, cfg.MemoryLimitPages = 1<<20, 64
	w := startWorker(t, cfg)
	spec := &FuncSpec{Export: "f", ABI: udf.ABIBatch, Args: bigint2, Result: bigint2[0]}
	_, err := w.Call(context.Background(), spec, time.Second, testmod.BigintInput([]int64{1}, []int64{2}))
	if !errors.Is(err, ErrBadOutput) || !strings.Contains(err.Error(), "exceeds the batch limit of 1048576 bytes") {
		t.Fatalf("got %v", err)
	}
}

// TestStrictRefusesAMissingLayer: a worker that cannot install a layer is
// refused in strict mode with an error naming it, and allowed (reporting
// the layer inactive) when strict mode is relaxed.
func TestStrictRefusesAMissingLayer(t *testing.T) {
	wasm := testmod.WAT(t, testmod.AddSpinBoomWAT)
	cfg := testConfig(t, wasm)
	cfg.IDs, cfg.Strict = nil, true // no user namespace: as on a host without root
	_, err := Start(context.Background(), cfg)
	if !errors.Is(err, ErrLayerMissing) || !strings.Contains(err.Error(), LayerUserNS) {
		t.Fatalf("strict start without namespaces: %v", err)
	}
	cfg.Strict = false
	w := startWorker(t, cfg)
	for _, l := range w.Layers() {
		if l.Name == LayerUserNS && l.Active {
			t.Fatalf("layer %s reported active without a user namespace", l.Name)
		}
	}
	if got, err := call(w, "add", time.Second, []int64{1}, []int64{2}); err != nil || got[0] != 3 {
		t.Fatalf("relaxed worker: %v %v", got, err)
	}
}

// TestHostRefusesAnOversizedAnswer: a compromised worker that sends an
// answer over the batch limit (whatever its engine would have checked) is
// killed before the host allocates it.
func TestHostRefusesAnOversizedAnswer(t *testing.T) {
	cfg := testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT))
	cfg.MaxOutputBytes = 1 << 20
	w := startWorker(t, cfg)
	add := &FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: bigint2, Result: bigint2[0]}
	_, err := w.call(context.Background(), add, time.Second, []byte("answer-bytes:4000000"), wire.FlagTestHook, nil)
	var ce *CallError
	if !errors.As(err, &ce) || ce.Violation == nil || ce.Violation.Limit != "result size" {
		t.Fatalf("want a result-size violation, got %v", err)
	}
}

// TestWorkerAnswersCannotBlockTheHost: a worker that answers one request
// several times, or answers an id nobody asked, is killed as a protocol
// violation; the host's reader never blocks, and Close returns.
func TestWorkerAnswersCannotBlockTheHost(t *testing.T) {
	wasm := testmod.WAT(t, testmod.AddSpinBoomWAT)
	add := &FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: bigint2, Result: bigint2[0]}
	for _, tc := range []string{"answer-thrice", "answer-unknown"} {
		t.Run(tc, func(t *testing.T) {
			w := startWorker(t, testConfig(t, wasm))
			// The caller stops waiting at once, as one whose client
			// cancelled: nobody reads its answers.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			w.call(ctx, add, time.Second, []byte(tc), wire.FlagTestHook, nil)
			select {
			case <-w.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the worker broke the protocol and is still served: the host's reader is stuck")
			}
			if err := w.Err(); err == nil || !strings.Contains(err.Error(), "not pending") {
				t.Errorf("worker's end: %v, want the protocol violation named", err)
			}
			closed := make(chan struct{})
			go func() { w.Close(context.Background()); close(closed) }()
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("Close hangs")
			}
			if _, err := call(w, "add", time.Second, []int64{1}, []int64{2}); !errors.Is(err, ErrWorkerDied) {
				t.Errorf("call after the violation: %v, want ErrWorkerDied", err)
			}
		})
	}
}
