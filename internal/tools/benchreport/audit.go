package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// auditFigures are the audit log's benchmarks (audit/bench_test.go), from
// one run: durable records/s beside a bare group-commit fsync loop on the
// same disk, per number of writers; one checkpoint; VerifyLog of 1M
// records.
type auditFigures struct {
	rows       []auditRow
	checkpoint string // duration of one checkpoint
	verify1M   string // wall time of VerifyLog over 1M records
	lines      []string
	cmd        string
}

type auditRow struct {
	writers         string
	log, bare, frac float64
}

var (
	vsBareLine = regexp.MustCompile(`^BenchmarkDurableVsBare/writers=(\d+)\S*\s.*?\s([\d.]+) bare-records/s\s+([\d.]+) log-records/s\s+([\d.]+) log/bare`)
	nsOpLine   = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op`)
)

// auditBenchmarks runs the audit log's benchmarks once.
func (r *report) auditBenchmarks(cfg config) error {
	benchtime := "2s"
	if cfg.quick {
		benchtime = "1x"
	}
	args := []string{"test", "-run", "^$", "-bench", "DurableVsBare|Checkpoint$|Verify1M", "-benchtime", benchtime, "./audit/"}
	r.audit.cmd = "go " + shellJoin(args)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", r.audit.cmd, err, out)
	}
	cmd := r.audit.cmd
	r.audit = parseAuditBench(string(out))
	r.audit.cmd = cmd
	return nil
}

// parseAuditBench reads the figures out of the benchmarks' output.
func parseAuditBench(out string) auditFigures {
	var a auditFigures
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		a.lines = append(a.lines, line)
		if m := vsBareLine.FindStringSubmatch(line); m != nil {
			bare, _ := strconv.ParseFloat(m[2], 64)
			log, _ := strconv.ParseFloat(m[3], 64)
			frac, _ := strconv.ParseFloat(m[4], 64)
			a.rows = append(a.rows, auditRow{writers: m[1], log: log, bare: bare, frac: frac})
			continue
		}
		if m := nsOpLine.FindStringSubmatch(line); m != nil {
			ns, _ := strconv.ParseFloat(m[2], 64)
			switch m[1] {
			case "BenchmarkCheckpoint":
				a.checkpoint = fmtDuration(ns)
			case "BenchmarkVerify1M":
				a.verify1M = fmtDuration(ns)
			}
		}
	}
	return a
}

func fmtDuration(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2f s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	default:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
}

// auditMarkdown is the report's audit section.
func (r *report) auditMarkdown(w func(string, ...any)) {
	a := r.audit
	w("## The audit log (durable records, checkpoints, verify)")
	w("")
	w("Every audited action waits for its record to be fsynced (group commit: the writers waiting at one time share one write and one fsync). The bare loop is the same group commit of the same line without the log's work (encoding, hash chain, Merkle tree), measured in alternating rounds on the same disk, so the ratio holds even when the disk's latency drifts. Goals (issue 18): ≥ 100k records/s with 64 writers and ≥ 80%% of the bare loop; verify of 1M records ≤ 5 s.")
	w("")
	w("| writers | audit log, records/s | bare group commit, records/s | log / bare |")
	w("|---|---|---|---|")
	for _, row := range a.rows {
		w("| %s | %.0f | %.0f | %.0f%% |", row.writers, row.log, row.bare, 100*row.frac)
	}
	w("")
	w("One checkpoint (Merkle root, Ed25519 signature, append, fsync): %s. `VerifyLog` of 1M records with a checkpoint every 1000: %s.", orNA(a.checkpoint), orNA(a.verify1M))
	w("")
	w("`%s`:", a.cmd)
	w("")
	w("```")
	for _, l := range a.lines {
		w("%s", l)
	}
	w("```")
	w("")
}

// shellJoin quotes the arguments a shell would take apart, so that the
// command printed in the report can be pasted as it is.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "|$^*?&;<>() ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}
