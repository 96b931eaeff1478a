package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/cgroup"
	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/sandbox/internal/testmod"
	"github.com/udfhost/udfhost/sandbox/internal/worker"
)

// The test binary doubles as the worker: Start re-executes it with
// "worker" as its only argument.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == "worker" {
		os.Exit(worker.Main(workerTestHooks()))
	}
	if canJail() {
		var err error
		if testCgroups, err = cgroup.New(fmt.Sprintf("udfhost-sandbox-test-%d", os.Getpid())); err != nil {
			fmt.Fprintln(os.Stderr, "cgroups:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if testCgroups != nil {
		testCgroups.Close()
	}
	os.Exit(code)
}

// testIDs serves the tests' workers; /proc/self/exe (the default Exe) is
// this test binary, reachable from inside a user namespace where the
// go-build directory is not.
var testIDs, _ = NewIDPool(DefaultIDBase, 1024)

var testCgroups *cgroup.Manager

var testLimits = cgroup.Limits{MemoryBytes: 512 << 20, Pids: 128, CPUQuota: 2}

func testConfig(t testing.TB, wasm []byte) Config {
	return Config{
		Identity: "spiffe://udfhost.local/test", Module: wasm, MemoryLimitPages: 16,
		MaxInstances: 2, Args: []string{"worker"}, Stderr: os.Stderr, IDs: testIDs, Strict: canJail(),
		Cgroups: testCgroups, Limits: testLimits,
	}
}

func startWorker(t testing.TB, cfg Config) *Worker {
	t.Helper()
	w, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

var bigint2 = []udf.Type{udf.BigInt, udf.BigInt}

func call(w *Worker, export string, deadline time.Duration, a, b []int64) ([]int64, error) {
	spec := &FuncSpec{Export: export, ABI: udf.ABIDirect, Args: bigint2, Result: udf.BigInt}
	out, err := w.Call(context.Background(), spec, deadline, testmod.BigintInput(a, b))
	if err != nil {
		return nil, err
	}
	col, _, err := abi.DecodeOutput(out, len(a), udf.BigInt)
	if err != nil {
		return nil, err
	}
	res := make([]int64, len(a))
	for i := range res {
		res[i] = int64(binary.LittleEndian.Uint64(col.Values[8*i:]))
	}
	return res, nil
}

func TestConcurrentCallsAreAnsweredCorrectly(t *testing.T) {
	w := startWorker(t, testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT)))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				a, b := []int64{int64(g), int64(i), -3}, []int64{1000, int64(g * i), 3}
				got, err := call(w, "add", time.Second, a, b)
				if errors.Is(err, ErrOverloaded) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				for r := range a {
					if got[r] != a[r]+b[r] {
						t.Errorf("row %d: %d + %d = %d", r, a[r], b[r], got[r])
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestViolationsAreClassifiedAndTheWorkerSurvives(t *testing.T) {
	cfg := testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT))
	cfg.PreciseInterrupt = true // the instance is discarded, the process stays
	w := startWorker(t, cfg)
	start := time.Now()
	if _, err := call(w, "spin", 200*time.Millisecond, []int64{-1}, []int64{0}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("spin: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("deadline of 200ms took %s to fire", d)
	}
	if _, err := call(w, "boom", time.Second, []int64{1}, []int64{1}); !errors.Is(err, ErrTrap) {
		t.Fatalf("boom: %v, want ErrTrap", err)
	}
	if _, err := call(w, "nope", time.Second, []int64{1}, []int64{1}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("missing export: %v, want ErrBadRequest", err)
	}
	if got, err := call(w, "spin", time.Second, []int64{4}, []int64{0}); err != nil || got[0] != 4 {
		t.Fatalf("after violations: %v, %v", got, err)
	}
}

// TestProcessInterruptKillsTheWorkerAtTheDeadline: without cancellation
// checks in guest code, the deadline is enforced by killing the worker; the
// overrunning batch gets ErrTimeout, another batch in flight ErrWorkerDied
// naming why.
func TestProcessInterruptKillsTheWorkerAtTheDeadline(t *testing.T) {
	w := startWorker(t, testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT)))
	other := make(chan error)
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, err := call(w, "spin", 5*time.Second, []int64{-1}, []int64{0})
		other <- err
	}()
	start := time.Now()
	_, err := call(w, "spin", 300*time.Millisecond, []int64{-1}, []int64{0})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("overrunning batch: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > time.Second {
		t.Errorf("deadline of 300ms enforced after %s", d)
	}
	if !w.Dead() {
		t.Error("worker not marked dead after the kill")
	}
	err = <-other
	if !errors.Is(err, ErrWorkerDied) || !strings.Contains(err.Error(), "exceeded its deadline") {
		t.Errorf("batch in flight alongside: %v, want ErrWorkerDied naming the deadline", err)
	}
}

func TestOverloadIsRefusedNotQueued(t *testing.T) {
	cfg := testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT))
	cfg.PreciseInterrupt = true
	cfg.MaxInstances, cfg.MaxInFlight = 1, 1
	w := startWorker(t, cfg)
	done := make(chan error)
	go func() {
		_, err := call(w, "spin", 500*time.Millisecond, []int64{-1}, []int64{0})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	_, err := call(w, "add", time.Second, []int64{1}, []int64{2})
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("second call: %v, want ErrOverloaded", err)
	}
	if d := w.RetryAfter(); d < time.Millisecond || d > time.Second {
		t.Errorf("RetryAfter = %s, want within [1ms, 1s]", d)
	}
	<-done
	if _, err := call(w, "add", time.Second, []int64{1}, []int64{2}); err != nil {
		t.Fatalf("after the queue drained: %v", err)
	}
}

func TestKilledWorkerIsReported(t *testing.T) {
	w := startWorker(t, testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT)))
	syscall.Kill(w.PID(), syscall.SIGKILL)
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the worker was killed")
	}
	if err := w.Err(); err == nil {
		t.Error("Err() = nil after SIGKILL")
	}
	if _, err := call(w, "add", time.Second, []int64{1}, []int64{2}); !errors.Is(err, ErrWorkerDied) {
		t.Errorf("call on a dead worker: %v, want ErrWorkerDied", err)
	}
}

func TestLoadFailureNamesTheProblem(t *testing.T) {
	cfg := testConfig(t, testmod.WAT(t, `(module (memory 100) (func (export "f") (result i32) i32.const 1))`))
	cfg.MemoryLimitPages = 10
	_, err := Start(context.Background(), cfg)
	if err == nil {
		t.Fatal("module with 100 pages of memory started under a 10-page limit")
	}
	if !errors.Is(err, ErrModule) {
		t.Errorf("error %q is not classed as the module's fault (ErrModule)", err)
	}
	for _, want := range []string{"module cannot run", "min 100 pages", "over limit of 10 pages"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name the problem (%q)", err, want)
		}
	}
}

func TestSparesAreUsedOnceAndStoppedOnClose(t *testing.T) {
	wasm := testmod.WAT(t, testmod.AddSpinBoomWAT)
	sp := NewSpares(testConfig(t, nil), 1)
	var pids []int
	for i := 0; i < 2; i++ {
		w, err := sp.Start(context.Background(), testConfig(t, wasm))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := call(w, "add", time.Second, []int64{2}, []int64{3}); err != nil || got[0] != 5 {
			t.Fatalf("worker from spares: %v, %v", got, err)
		}
		pids = append(pids, w.PID())
		w.Close(context.Background())
	}
	if pids[0] == pids[1] {
		t.Errorf("two pods got the same process %d", pids[0])
	}
	time.Sleep(200 * time.Millisecond) // let the refill spawn
	sp.Close()
	if len(sp.ch) != 0 {
		t.Errorf("spares left after Close: %d", len(sp.ch))
	}
}

// BenchmarkCallDirectBigint1024 is the cost of one 1024-row batch through
// the host↔worker hop with the direct ABI (1024 wasm calls).
// Sub-benchmarks compare a fully jailed worker with one without the jail.
func BenchmarkCallDirectBigint1024(b *testing.B) {
	forJail(b, benchCallDirect)
}

func benchCallDirect(b *testing.B, cfg Config) {
	w := startWorker(b, cfg)
	a := make([]int64, 1024)
	for i := range a {
		a[i] = int64(i)
	}
	in := testmod.BigintInput(a, a)
	spec := &FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: bigint2, Result: udf.BigInt}
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.Call(context.Background(), spec, time.Second, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkCallDirectBigint1024Parallel keeps several batches in flight on
// one worker, as several task-manager streams do.
func BenchmarkCallDirectBigint1024Parallel(b *testing.B) {
	for _, inflight := range []int{4, 16} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			cfg := testConfig(b, testmod.WAT(b, testmod.AddSpinBoomWAT))
			cfg.MaxInFlight = 64
			w := startWorker(b, cfg)
			a := make([]int64, 1024)
			in := testmod.BigintInput(a, a)
			spec := &FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: bigint2, Result: udf.BigInt}
			b.SetParallelism(inflight / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := w.Call(context.Background(), spec, time.Second, in); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkWorkerStart is a pod's start without a spare: exec, Go runtime
// start, module compiled and an instance warm, for a tiny module.
func BenchmarkWorkerStart(b *testing.B) {
	forJail(b, benchWorkerStart)
}

func benchWorkerStart(b *testing.B, cfg Config) {
	for i := 0; i < b.N; i++ {
		w, err := Start(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		w.Close(context.Background())
	}
}

func TestPrepareChecksTheExport(t *testing.T) {
	w := startWorker(t, testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT)))
	good := &FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: bigint2, Result: udf.BigInt}
	if err := w.Prepare(context.Background(), good); err != nil {
		t.Fatalf("prepare add: %v", err)
	}
	for _, bad := range []*FuncSpec{
		{Export: "nope", ABI: udf.ABIDirect, Args: bigint2, Result: udf.BigInt},
		{Export: "add", ABI: udf.ABIDirect, Args: bigint2[:1], Result: udf.BigInt},
		{Export: "add", ABI: udf.ABIBatch, Args: bigint2, Result: udf.BigInt},
	} {
		if err := w.Prepare(context.Background(), bad); !errors.Is(err, ErrBadRequest) {
			t.Errorf("prepare %+v: %v, want ErrBadRequest", bad, err)
		}
	}
	if got, err := call(w, "add", time.Second, []int64{2}, []int64{3}); err != nil || got[0] != 5 {
		t.Fatalf("call after prepare: %v, %v", got, err)
	}
}

// TestDoctorProbesRunInsideTheJail: the layers that exist must hold
// against probes run by the worker's own code after the jail is up.
func TestDoctorProbesRunInsideTheJail(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("namespaces need root; make test runs as root")
	}
	rep, err := Doctor(context.Background(), Config{Args: []string{"worker"}, IDs: testIDs, Strict: true, Cgroups: testCgroups, Limits: testLimits})
	if err != nil {
		t.Fatal(err)
	}
	if err := strictCheck(rep.Layers); err != nil {
		t.Error(err)
	}
	if len(rep.Probes) < 12 {
		t.Errorf("%d probes ran", len(rep.Probes))
	}
	for _, p := range rep.Probes {
		if !p.Denied {
			t.Errorf("probe %q was not denied: %s", p.Name, p.Detail)
		}
	}
	if hn, _ := os.Hostname(); hn == "udfhost-worker" {
		t.Error("the worker's hostname leaked into the host's UTS namespace")
	}
}

// forJail runs bench with a worker configured as serve starts it (every
// layer, strict) and, for comparison, without the jail: no namespaces, ids,
// cgroups, Landlock or seccomp (only rlimits and no_new_privs remain, which
// cost nothing). The server never starts a worker the second way.
func forJail(b *testing.B, bench func(*testing.B, Config)) {
	wasm := testmod.WAT(b, testmod.AddSpinBoomWAT)
	b.Run("jailed", func(b *testing.B) {
		if !canJail() {
			b.Skip("the jail needs root")
		}
		bench(b, testConfig(b, wasm))
	})
	b.Run("unjailed", func(b *testing.B) {
		bench(b, unjailed(testConfig(b, wasm)))
	})
}

// unjailed is cfg without the jail, for benchmarks of its cost: no
// namespaces, ids, cgroups, Landlock or seccomp.
func unjailed(cfg Config) Config {
	cfg.IDs, cfg.Cgroups, cfg.Strict, cfg.MeasureSyscalls = nil, nil, false, true
	return cfg
}

// TestAbandonedBatchIsStoppedAtItsDeadline: a runaway batch whose caller
// gave up (its client's deadline passed long before the pool's) is still
// stopped at its own deadline, and its violation is reported for it (the
// late callback), not charged to the batch that comes next. With process
// interruption its worker is killed; with wasm interruption the instance
// is interrupted and the worker serves on.
func TestAbandonedBatchIsStoppedAtItsDeadline(t *testing.T) {
	wasm := testmod.WAT(t, testmod.AddSpinBoomWAT)
	spin := &FuncSpec{Export: "spin", ABI: udf.ABIDirect, Args: bigint2, Result: bigint2[0]}
	for _, precise := range []bool{false, true} {
		t.Run(fmt.Sprintf("precise=%v", precise), func(t *testing.T) {
			cfg := testConfig(t, wasm)
			cfg.MaxInstances, cfg.PreciseInterrupt = 1, precise
			w := startWorker(t, cfg)
			late := make(chan error, 4)
			client, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			const deadline = 400 * time.Millisecond
			_, err := w.CallReporting(client, spin, deadline, testmod.BigintInput([]int64{-1}, []int64{0}), func(err error) { late <- err })
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("abandoned call: %v, want the client's deadline", err)
			}
			// The next batch arrives while the runaway one holds the only
			// instance: whatever it gets, it is not a timeout of its own.
			next := make(chan error, 1)
			go func() { _, err := call(w, "add", 5*time.Second, []int64{1}, []int64{2}); next <- err }()
			var lateErr error
			select {
			case lateErr = <-late:
			case <-time.After(deadline + 10*time.Second):
				t.Fatal("the abandoned batch was never stopped: its guest still runs")
			}
			if !errors.Is(lateErr, ErrTimeout) {
				t.Errorf("late report: %v, want ErrTimeout", lateErr)
			}
			err = <-next
			if precise {
				if err != nil {
					t.Errorf("next batch on the same worker: %v", err)
				}
				if w.Dead() {
					t.Error("wasm interruption killed the worker")
				}
			} else {
				if !errors.Is(err, ErrWorkerDied) || !strings.Contains(err.Error(), "exceeded its deadline") {
					t.Errorf("next batch: %v, want ErrWorkerDied naming the other batch's deadline (retried on a new worker, not charged)", err)
				}
				<-w.Done()
				ws, _ := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
				if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					t.Errorf("worker ended with %v, want killed", w.cmd.ProcessState)
				}
				r := startWorker(t, cfg) // the pod's replacement
				if got, err := call(r, "add", time.Second, []int64{1}, []int64{2}); err != nil || got[0] != 3 {
					t.Errorf("replacement: %v, %v", got, err)
				}
			}
			select {
			case err := <-late:
				t.Errorf("a second late report: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}
