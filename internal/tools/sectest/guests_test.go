package sectest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/jsonrows"
)

func TestRowErrorsCheck(t *testing.T) {
	var want []json.RawMessage
	if err := json.Unmarshal([]byte(`["ok", {"error": "UTF-8"}, "ok"]`), &want); err != nil {
		t.Fatal(err)
	}
	cr := &caseRun{c: &Case{Want: want}}
	tests := []struct {
		name string
		vals []any
		ok   bool
		why  string
	}{
		{"row error", []any{"ok", jsonrows.RowError{Error: "row 1: result is not valid UTF-8"}, "ok"}, true, `row 1: error "row 1: result is not valid UTF-8"`},
		{"delivered as is", []any{"ok", "\xff\xfe", "ok"}, false, `row 1 was delivered as "\xff\xfe"`},
		{"other error", []any{"ok", jsonrows.RowError{Error: "trap"}, "ok"}, false, `row 1 failed with "trap"`},
		{"other row wrong", []any{"ok", jsonrows.RowError{Error: "UTF-8"}, "ko"}, false, "row 2: got"},
		{"other row an error", []any{jsonrows.RowError{Error: "UTF-8"}, jsonrows.RowError{Error: "UTF-8"}, "ok"}, false, "row 0: got"},
		{"rows missing", []any{"ok"}, false, "1 rows answered, want 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := rowErrors(t.Context(), cr, tc.vals)
			if ok != tc.ok || !strings.Contains(why, tc.why) {
				t.Errorf("rowErrors = %v, %q; want %v and %q", ok, why, tc.ok, tc.why)
			}
		})
	}
}

func TestNotOneLine(t *testing.T) {
	tests := []struct{ msg, want string }{
		{`invalid function name "a\nb": use letters, digits and _`, ""},
		{"invalid function name \"a\nb\"", "control character"},
		{"name \"a\x00b\"", "control character"},
		{"name \"a\x1bb\"", "control character"},
		{"name \"" + strings.Repeat("a", 1<<20) + "\"", "bytes long"},
	}
	for _, tc := range tests {
		if got := notOneLine(tc.msg); tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("notOneLine(%.40q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

func TestTooLarge(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (1048620 vs. 1048576)"), true},
		{&failure{stage: "create", code: "ResourceExhausted", msg: "grpc: received message larger than max (1048620 vs. 1048576)"}, true},
		{status.Error(codes.ResourceExhausted, "too many compiles, retry in 1s"), false},
		{status.Error(codes.InvalidArgument, "name is longer than max"), false},
	}
	for _, tc := range tests {
		if got := tooLarge(tc.err); got != tc.want {
			t.Errorf("tooLarge(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestHostileNamesAreDistinctAndMarked(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range hostileNamesFor("st_x_hostile_names") {
		if seen[n.name] {
			t.Errorf("%s: name used twice", n.label)
		}
		seen[n.name] = true
		if n.name != "" && !strings.Contains(n.name, "st_x_hostile_names") {
			t.Errorf("%s: %.40q does not carry the prefix the audit log is searched for", n.label, n.name)
		}
	}
}

// TestAuthFailuresCount checks how the flood cases read the audit log:
// records of the gRPC API only, each worth its count (1 without one).
func TestAuthFailuresCount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	lines := []string{
		`{"seq":1,"type":"auth.failed","actor":"127.0.0.1:1","resource":"/udfhost.v1.ArtifactService/ListArtifacts","decision":"deny"}`,
		`{"seq":2,"type":"auth.failed","actor":"127.0.0.1","decision":"deny","details":{"count":"1999","first":"t0","last":"t1"}}`,
		`{"seq":3,"type":"auth.failed","resource":"upload-url","decision":"deny"}`,
		`{"seq":4,"type":"auth.failed","resource":"upload/u1","decision":"deny"}`,
		`{"seq":5,"type":"function.created","decision":"allow"}`,
		`{"seq":6,"type":"auth.failed","decision":"deny","details":{"count":"2000"}}`,
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cr := &caseRun{r: &runner{audit: &auditLog{path: path}}}
	recs, sum, err := cr.authFailures(0)
	if err != nil || len(recs) != 3 || sum != 4000 {
		t.Errorf("authFailures(0) = %d records, %d failures, %v; want 3 records, 4000 failures", len(recs), sum, err)
	}
	if recs, sum, _ := cr.authFailures(2); len(recs) != 1 || sum != 2000 {
		t.Errorf("authFailures(2) = %d records, %d failures; want 1 record, 2000", len(recs), sum)
	}
}

// TestBusiestDescendant checks the measurement the abandoned_runaway case
// relies on: a spinning process is runnable in (nearly) every sample, an
// idle one in none, however loaded the machine. No speed is asserted.
func TestBusiestDescendant(t *testing.T) {
	spin := exec.Command("sh", "-c", "while :; do :; done")
	idle := exec.Command("sleep", "30")
	for _, c := range []*exec.Cmd{spin, idle} {
		if err := c.Start(); err != nil {
			t.Skipf("cannot start %s: %v", c.Path, err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	time.Sleep(200 * time.Millisecond) // past the shell's start-up
	tree := processTree(os.Getpid())
	if _, ok := tree[spin.Process.Pid]; !ok {
		t.Fatalf("processTree(self) = %v; want it to hold child %d", tree, spin.Process.Pid)
	}
	if p := tree[idle.Process.Pid]; p.ppid != os.Getpid() || p.comm != "sleep" {
		t.Errorf("child %d read as %+v; want ppid %d, comm sleep", idle.Process.Pid, p, os.Getpid())
	}
	busy, err := busiestDescendant(spin.Process.Pid, 300*time.Millisecond)
	if err != nil || busy.pid != spin.Process.Pid || busy.runnable < 0.8 {
		t.Errorf("spinning process: %+v, %v; want it runnable in at least 80%% of samples", busy, err)
	}
	quiet, err := busiestDescendant(idle.Process.Pid, 300*time.Millisecond)
	if err != nil || quiet.pid != idle.Process.Pid || quiet.runnable != 0 {
		t.Errorf("sleeping process: %+v, %v; want it never runnable", quiet, err)
	}
	if _, err := busiestDescendant(1<<30, time.Millisecond); err == nil {
		t.Error("a process that does not exist was measured")
	}
}
