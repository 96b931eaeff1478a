package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/udfhost/udfhost/artifacts/internal/wasmscan"
)

// row is one shape's measurements.
type row struct {
	shape
	n, bytes int
	limit    string // the scan's refusal of the next size up
	work     int64  // the scan's estimate (Module.CompileWork)
	at, half sample // at n, and at n/2 for the growth
	verdict  string
}

// measureAll measures every shape that match matches, at 1/scale of the
// largest size the scan accepts, prints the table to w and reports
// whether any row failed.
func measureAll(w io.Writer, match *regexp.Regexp, scale int, margin float64) (failed bool, err error) {
	header(w, scale, margin)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "shape\tn\tbytes\twork\tcompile s\tns/work\tgrowth\tRSS+cache MiB\theap MiB\tinstance MiB (model)\ttime×\tmemory×\tverdict")
	var rows []row
	for _, s := range shapes() {
		if !match.MatchString(s.Name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "costmodel: %s...\n", s.Name) // a run takes minutes
		r, err := measureShape(s, scale, margin)
		if err != nil {
			return false, err
		}
		failed = failed || r.verdict != "PASS"
		rows = append(rows, r)
		printRow(tw, r)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nThe limit each shape is at (the scan's refusal of the next size up):")
	for _, r := range rows {
		fmt.Fprintf(w, "  %s (n %s): %s\n", r.Name, r.What, r.limit)
	}
	return failed, nil
}

func measureShape(s shape, scale int, margin float64) (row, error) {
	n, limit, err := largest(s)
	if err != nil {
		return row{}, err
	}
	r := row{shape: s, n: max(n/scale, 2), limit: limit}
	wasm := s.Build(r.n)
	r.bytes = len(wasm)
	m, err := wasmscan.Scan(wasm)
	if err != nil {
		return row{}, fmt.Errorf("%s n=%d: %w", s.Name, r.n, err)
	}
	r.work = m.CompileWork()
	if r.at, err = measure(s, r.n); err != nil {
		return row{}, err
	}
	if r.at.Killed == "" {
		if r.half, err = measure(s, r.n/2); err != nil {
			return row{}, err
		}
	}
	r.verdict = verdict(r, margin)
	return r, nil
}

// verdict is PASS when every budget keeps margin times what was measured.
func verdict(r row, margin float64) string {
	switch {
	case r.at.Killed != "":
		return "FAIL: killed: " + r.at.Killed
	case compileSeconds/r.at.Seconds < margin:
		return fmt.Sprintf("FAIL: time within %gx of the budget", margin)
	case float64(compileMemory)/float64(r.at.memory()) < margin:
		return fmt.Sprintf("FAIL: memory within %gx of the budget", margin)
	case r.perInstance != nil && float64(instanceMemory)/float64(max(r.at.InstanceBytes, 1)) < margin:
		return fmt.Sprintf("FAIL: per-instance memory within %gx of the budget", margin)
	}
	return "PASS"
}

func printRow(w io.Writer, r row) {
	mib := func(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
	if r.at.Killed != "" {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t\t\t\t\t\t\t\t\t%s\n", r.Name, r.n, r.bytes, r.work, r.verdict)
		return
	}
	nsPerWork, growth := "-", "-"
	cost := func(n int, work int64) float64 { return float64(n) }
	if r.work >= 1_000_000 && r.work >= 10*int64(r.bytes) { // control flow dominates: the model is work
		nsPerWork = fmt.Sprintf("%.2f", r.at.Seconds*1e9/float64(r.work))
		cost = func(_ int, work int64) float64 { return float64(work) }
	}
	if m, err := wasmscan.Scan(r.Build(r.n / 2)); err == nil && r.half.Seconds > 0 {
		// How time grew from n/2 to n against how the model says it
		// should: ~1 when the model has the shape of the cost.
		growth = fmt.Sprintf("%.2f", (r.at.Seconds/r.half.Seconds)/(cost(r.n, r.work)/cost(r.n/2, m.CompileWork())))
	}
	instance := ""
	if r.perInstance != nil {
		instance = fmt.Sprintf("%s (%s)", mib(r.at.InstanceBytes), mib(r.perInstance(r.n)))
	}
	fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%.3f\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%s\n",
		r.Name, r.n, r.bytes, r.work, r.at.Seconds, nsPerWork, growth, mib(r.at.memory()), mib(r.at.PeakHeap), instance,
		compileSeconds/r.at.Seconds, float64(compileMemory)/float64(r.at.memory()), r.verdict)
}

// header says what was measured with what, and against which budgets.
func header(w io.Writer, scale int, margin float64) {
	wazero := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				wazero = d.Version
			}
		}
	}
	fmt.Fprintf(w, "wazero %s, %s, %s, %s\n", wazero, runtime.Version(), runtime.GOARCH, cpuModel())
	fmt.Fprintf(w, "budget of the jailed compile worker: %d core, %d MiB, %d s; per-instance allocations: %d MiB; PASS keeps %gx headroom\n",
		compileCores, compileMemory>>20, compileSeconds, instanceMemory>>20, margin)
	if scale > 1 {
		fmt.Fprintf(w, "quick: every module at 1/%d of the largest the scan accepts (not a check of the budgets)\n", scale)
	}
	fmt.Fprintln(w, "work: the scan's estimate of the optimizing compiler's work; growth: time(n)/time(n/2) over the model's ratio (~1: the model has the cost's shape)")
	fmt.Fprintln(w)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOOS
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOOS
}
