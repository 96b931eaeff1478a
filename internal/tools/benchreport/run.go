package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/udfhost/udfhost/internal/jsonrows"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// benchResult is the part of `udfhost bench`'s JSON the report uses.
type benchResult struct {
	RowsPerSec        float64 `json:"rows_per_sec"`
	BatchesPerSec     float64 `json:"batches_per_sec"`
	P50Ms             float64 `json:"p50_ms"`
	P99Ms             float64 `json:"p99_ms"`
	MaxMs             float64 `json:"max_ms"`
	Errors            int64   `json:"errors"`
	ResourceExhausted int64   `json:"resource_exhausted"`
	FirstError        string  `json:"first_error"`
}

type loadFigure struct {
	name, abi, signature string
	streams              int
	server, echo         benchResult
	serverCmd, echoCmd   string
}

type shaFigure struct {
	service                      benchResult
	serviceCmd                   string
	wazero, native, nativePurego float64
}

type coldFigure struct {
	module, cache       string
	create, firstResult time.Duration
}

type report struct {
	machine     map[string]string
	duration    time.Duration
	load        []loadFigure
	sha         shaFigure
	cold        []coldFigure
	workerStart string
	// The jail's cost, measured in the same run: worker start and one
	// 1024-row batch with every layer and without the jail.
	workerStartUnjailed, batchJailed, batchUnjailed string
	engineLines                                     []string
	hostIdle                                        int
	hostLoad                                        int
	workerIdle                                      int
	workerLoad                                      int
	fifty                                           []int
	overload                                        []loadFigure
	halfLoad                                        benchResult
	halfLoadCmd                                     string
	maxLoad                                         float64
	interruptLines                                  []string
	split                                           cpuSplit
	audit                                           auditFigures
	profile                                         string
}

func run(cfg config) (*report, error) {
	r := &report{machine: machine(), duration: cfg.duration}
	s, err := startServer(cfg.bin)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	ex := func(name string) string { return filepath.Join(cfg.examples, name+".wasm") }
	read := func(name string) ([]byte, error) { return os.ReadFile(ex(name)) }

	type fn struct{ name, module, export, sig, abi string }
	fns := []fn{
		{"affine_batch", "affine", "affine", "(BIGINT, BIGINT, BIGINT) -> BIGINT", "batch (Go SDK, vectorised)"},
		{"affine_rows", "affine", "affine_rows", "(BIGINT, BIGINT, BIGINT) -> BIGINT", "batch (Go SDK, row at a time)"},
		{"affine_direct", "affine_direct", "affine", "(BIGINT, BIGINT, BIGINT) -> BIGINT", "direct (WAT)"},
		{"upper", "upper", "upper", "(VARCHAR) -> VARCHAR", "batch (Go SDK, row at a time)"},
		{"sha256hex", "sha256hex", "sha256hex", "(BYTES) -> VARCHAR", "batch (Go SDK)"},
	}
	ids := map[string]string{}
	for _, f := range fns {
		if ids[f.module] == "" {
			b, err := read(f.module)
			if err != nil {
				return nil, err
			}
			if ids[f.module], err = s.uploadBytes(f.module, b); err != nil {
				return nil, err
			}
		}
		if err := s.createFunction(f.name, ids[f.module], f.export, f.sig); err != nil {
			return nil, err
		}
	}
	r.hostIdle = rssKiB(s.cmd.Process.Pid)
	affineWorker := workerFor(s, "affine_batch")
	r.workerIdle = rssKiB(affineWorker)

	dur := cfg.duration.String()
	bench := func(args ...string) (benchResult, string, error) {
		full := append([]string{"bench", "--duration", dur}, args...)
		if cfg.quick {
			full = append(full, "--warmup", "100ms")
		}
		out, err := s.cli(full...)
		var res benchResult
		if err == nil {
			err = json.Unmarshal(out, &res)
		}
		return res, "udfhost " + strings.Join(full, " "), err
	}

	// End to end against the echo ceiling of the same shape, interleaved so
	// drift hits both alike.
	for _, f := range fns[:4] {
		for _, streams := range []int{1, 4, 16} {
			st := strconv.Itoa(streams)
			lf := loadFigure{name: f.name, abi: f.abi, signature: f.sig, streams: streams}
			var err error
			if lf.echo, lf.echoCmd, err = bench("--echo", "--signature", f.sig, "--streams", st); err != nil {
				return nil, err
			}
			var peak sampler
			if f.name == "affine_batch" && streams == 16 {
				peak.start(s.cmd.Process.Pid, affineWorker)
			}
			if lf.server, lf.serverCmd, err = bench("--function", f.name, "--streams", st); err != nil {
				return nil, err
			}
			if f.name == "affine_batch" && streams == 16 {
				r.hostLoad, r.workerLoad = peak.stop()
				r.maxLoad = lf.server.BatchesPerSec
			}
			log.Printf("%s streams=%d: %.2fM rows/s, echo %.2fM", f.name, streams, lf.server.RowsPerSec/1e6, lf.echo.RowsPerSec/1e6)
			r.load = append(r.load, lf)
		}
	}

	// Where the CPU goes at full load, per process.
	if r.split, err = measureSplit(s, affineWorker, "bench", "--function", "affine_batch", "--streams", "16", "--duration", dur); err != nil {
		return nil, err
	}

	// Latency at half the maximum load.
	if r.maxLoad > 0 {
		rate := strconv.FormatFloat(r.maxLoad/2, 'f', 0, 64)
		if r.halfLoad, r.halfLoadCmd, err = bench("--function", "affine_batch", "--streams", "16", "--rate", rate); err != nil {
			return nil, err
		}
	}

	// Overload: far more batches in flight than the pod admits.
	for _, w := range []string{"1", "16"} {
		lf := loadFigure{name: "affine_batch", streams: 64}
		if lf.server, lf.serverCmd, err = bench("--function", "affine_batch", "--streams", "64", "--window", w); err != nil {
			return nil, err
		}
		r.overload = append(r.overload, lf)
	}

	// Compute-heavy: the service vs the same module in-process vs native.
	if r.sha.service, r.sha.serviceCmd, err = bench("--function", "sha256hex", "--value-size", "1024", "--streams", "1"); err != nil {
		return nil, err
	}
	if err := r.goBenchmarks(cfg); err != nil {
		return nil, err
	}
	if err := r.auditBenchmarks(cfg); err != nil {
		return nil, err
	}

	// Cold start: CreateFunction -> first result.
	for _, m := range []string{"add", "upper"} {
		for _, cache := range []string{"warm", "cold"} {
			create, total, err := coldStart(s, ex(m), cache == "cold")
			if err != nil {
				return nil, err
			}
			r.cold = append(r.cold, coldFigure{module: m, cache: cache, create: create, firstResult: total})
		}
	}

	// A host CPU profile under the same load, from a separate server.
	affineWasm, err := read("affine")
	if err != nil {
		return nil, err
	}
	if r.profile, err = hostProfile(cfg, affineWasm, dur); err != nil {
		return nil, err
	}

	// Footprint of fiftyPods idle pods.
	add, err := read("add")
	if err != nil {
		return nil, err
	}
	before, _ := s.workerPIDs()
	for i := 0; i < fiftyPods; i++ {
		id, err := s.uploadBytes(fmt.Sprintf("add%d", i), withNonce(add, i))
		if err != nil {
			return nil, err
		}
		if err := s.createFunction(fmt.Sprintf("add_%d", i), id, "add", "(BIGINT, BIGINT) -> BIGINT"); err != nil {
			return nil, err
		}
	}
	after, _ := s.workerPIDs()
	for pod, pid := range after {
		if _, ok := before[pod]; !ok {
			r.fifty = append(r.fifty, rssKiB(pid))
		}
	}
	return r, nil
}

// fiftyPods is how many small pods the footprint creates.
const fiftyPods = 50

// workerFor returns the worker pid serving a function.
func workerFor(s *server, name string) int {
	ctx, cancel := s.ctx()
	defer cancel()
	f, err := s.functions().GetFunction(ctx, &udfhostv1.GetFunctionRequest{Name: name})
	if err != nil {
		return 0
	}
	pids, _ := s.workerPIDs()
	return pids[f.SpiffeId]
}

// sampler records the peak RSS of two processes while a load runs.
type sampler struct {
	done       chan struct{}
	wg         sync.WaitGroup
	peakA      int
	peakB      int
	pidA, pidB int
}

func (p *sampler) start(a, b int) {
	p.done, p.pidA, p.pidB = make(chan struct{}), a, b
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			p.peakA, p.peakB = max(p.peakA, rssKiB(p.pidA)), max(p.peakB, rssKiB(p.pidB))
			select {
			case <-p.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}

func (p *sampler) stop() (int, int) {
	close(p.done)
	p.wg.Wait()
	return p.peakA, p.peakB
}

// withNonce appends a custom section so the module gets its own digest
// (and pod) without changing what it does.
func withNonce(wasm []byte, i int) []byte {
	name := fmt.Sprintf("udfhost.nonce.%d", i)
	payload := append(append([]byte{byte(len(name))}, name...), 1) // wazero refuses an empty body
	out := append(append([]byte{}, wasm...), 0)
	out = binary.AppendUvarint(out, uint64(len(payload)))
	return append(out, payload...)
}

var coldN int

// coldStart uploads a fresh copy of a module, optionally empties the
// compilation cache, and times CreateFunction until the first result.
func coldStart(s *server, path string, cold bool) (create, total time.Duration, err error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	coldN++
	id, err := s.uploadBytes(fmt.Sprintf("cold%d", coldN), withNonce(wasm, 1000+coldN))
	if err != nil {
		return 0, 0, err
	}
	if cold {
		if err := os.RemoveAll(filepath.Join(s.data, "cache", "wazero")); err != nil {
			return 0, 0, err
		}
		os.MkdirAll(filepath.Join(s.data, "cache", "wazero"), 0o700)
	}
	sig, export, arg := "(BIGINT, BIGINT) -> BIGINT", "add", `[1, 2]`
	if strings.Contains(path, "upper") {
		sig, export, arg = "(VARCHAR) -> VARCHAR", "upper", `["x"]`
	}
	args, _, _ := parseSig(sig)
	b := jsonrows.NewBuilder(args)
	if err := b.AddLine([]byte(arg)); err != nil {
		return 0, 0, err
	}
	name := fmt.Sprintf("cold_%d", coldN)
	ctx, cancel := s.ctx()
	defer cancel()
	start := time.Now()
	if _, err := s.functions().CreateFunction(ctx, &udfhostv1.CreateFunctionRequest{Name: name, ArtifactId: id, Export: export, Signature: sig}); err != nil {
		return 0, 0, err
	}
	create = time.Since(start)
	if _, err := s.invoker().Invoke(ctx, &udfhostv1.InvokeRequest{Function: name, Batch: b.Batch()}); err != nil {
		return 0, 0, err
	}
	return create, time.Since(start), nil
}

func parseSig(sig string) ([]udfhostv1.SqlType, udfhostv1.SqlType, error) {
	if strings.HasPrefix(sig, "(VARCHAR)") {
		return []udfhostv1.SqlType{udfhostv1.SqlType_TYPE_VARCHAR}, udfhostv1.SqlType_TYPE_VARCHAR, nil
	}
	return []udfhostv1.SqlType{udfhostv1.SqlType_TYPE_BIGINT, udfhostv1.SqlType_TYPE_BIGINT}, udfhostv1.SqlType_TYPE_BIGINT, nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+)\s+\d+\s+([\d.]+) ns/op.*?(?:\s([\d.]+) rows/s)?$`)

// goBenchmarks runs the in-process reference benchmarks.
func (r *report) goBenchmarks(cfg config) error {
	benchtime := "2s"
	if cfg.quick {
		benchtime = "1x"
	}
	runBench := func(args ...string) (map[string][2]float64, string, error) {
		full := append([]string{"test", "-run", "^$", "-benchtime", benchtime}, args...)
		cmd := exec.Command("go", full...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, "", fmt.Errorf("go %s: %v\n%s", strings.Join(full, " "), err, out)
		}
		res := map[string][2]float64{}
		var lines []string
		for _, line := range strings.Split(string(out), "\n") {
			if m := benchLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				ns, _ := strconv.ParseFloat(m[2], 64)
				rps, _ := strconv.ParseFloat(m[3], 64)
				res[strings.TrimSuffix(m[1], "-"+strconv.Itoa(numCPU()))] = [2]float64{ns, rps}
				lines = append(lines, strings.TrimSpace(line))
			}
		}
		return res, strings.Join(lines, "\n"), nil
	}
	sha, shaLines, err := runBench("-bench", "SHA256", "./internal/tools/benchsuite")
	if err != nil {
		return err
	}
	pure, pureLines, err := runBench("-tags", "purego", "-bench", "SHA256Native", "./internal/tools/benchsuite")
	if err != nil {
		return err
	}
	r.sha.wazero = sha["BenchmarkSHA256Wazero"][1]
	r.sha.native = sha["BenchmarkSHA256Native"][1]
	r.sha.nativePurego = pure["BenchmarkSHA256Native"][1]
	r.engineLines = append(r.engineLines, shaLines, "(-tags purego) "+pureLines)
	eng, engLines, err := runBench("-bench", "Engine|WorkerStart|CallDirect", "./sandbox/internal/worker", "./sandbox")
	if err != nil {
		return err
	}
	r.interruptLines = append(r.interruptLines, engLines)
	dur := func(name string, round time.Duration) string {
		if v, ok := eng[name]; ok {
			return time.Duration(v[0]).Round(round).String()
		}
		return "n/a"
	}
	r.workerStart = dur("BenchmarkWorkerStart/jailed", 10*time.Microsecond)
	r.workerStartUnjailed = dur("BenchmarkWorkerStart/unjailed", 10*time.Microsecond)
	r.batchJailed = dur("BenchmarkCallDirectBigint1024/jailed", 100*time.Nanosecond)
	r.batchUnjailed = dur("BenchmarkCallDirectBigint1024/unjailed", 100*time.Nanosecond)
	return nil
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return max(1, strings.Count(string(b), "\nprocessor")+boolInt(strings.HasPrefix(string(b), "processor")))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// machine describes where the figures were measured.
func machine() map[string]string {
	m := map[string]string{"nproc": strconv.Itoa(numCPU())}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m["go"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m["commit"] = strings.TrimSpace(string(out))
	}
	m["date"] = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	return m
}
