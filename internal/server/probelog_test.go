package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/sandbox"
)

// TestProbeOutputIsLoggedAsProbeResult: what the start-up probes' workers
// print (a trapped probe prints the seccomp violation line) goes to the log
// marked as a probe result, not to the workers' stderr.
func TestProbeOutputIsLoggedAsProbeResult(t *testing.T) {
	var stderr, logs bytes.Buffer
	s := New(Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), WorkerStderr: &stderr})
	s.workerBase = sandbox.Config{Stderr: &stderr}
	w := s.probeConfig().Stderr
	for _, part := range []string{"udfhost-seccomp-vio", "lation syscall=57\nworker: ", "something else\n"} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("probe output reached the workers' stderr: %q", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines %q, want 2", lines)
	}
	if l := lines[0]; !strings.Contains(l, `msg="sandbox probe result: denied by the seccomp filter, as expected" syscall=57`) || strings.Contains(l, "udfhost-seccomp-violation") {
		t.Errorf("violation line logged as %q", l)
	}
	if l := lines[1]; !strings.Contains(l, `msg="sandbox probe output" line="worker: something else"`) {
		t.Errorf("other line logged as %q", l)
	}
	if s.workerBase.Stderr != &stderr {
		t.Error("probeConfig changed the workers' own stderr")
	}
}
