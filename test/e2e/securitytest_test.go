package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildHostile builds the hostile corpus (test/hostile) into dir as `make
// hostile` does into bin/hostile.
func buildHostile(t *testing.T, dir string) {
	t.Helper()
	root := repoRoot()
	src := filepath.Join(root, "test", "hostile")
	run := func(env []string, name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	wats, _ := filepath.Glob(filepath.Join(src, "*.wat"))
	for _, w := range wats {
		run(nil, "wat2wasm", "-o", filepath.Join(dir, strings.TrimSuffix(filepath.Base(w), ".wat")+".wasm"), w)
	}
	gos, _ := filepath.Glob(filepath.Join(src, "go", "*"))
	for _, g := range gos {
		run([]string{"GOOS=wasip1", "GOARCH=wasm"}, "go", "build", "-buildmode=c-shared",
			"-o", filepath.Join(dir, filepath.Base(g)+".wasm"), "./test/hostile/go/"+filepath.Base(g))
	}
	files, _ := filepath.Glob(filepath.Join(src, "fuzz", "*.bin"))
	for _, f := range append(files, filepath.Join(src, "manifest.json")) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSecuritySuite runs `udfhost security-test` with the whole hostile
// corpus against a real server: every case must be stopped and audited
// while the canary keeps answering.
func TestSecuritySuite(t *testing.T) {
	corpus := t.TempDir()
	buildHostile(t, corpus)
	// The suite's policy: the embedded default's environment and pool, and
	// the private environment and connections of the egress cases.
	out, err := exec.Command(binPath, "security-test", "--write-policy", t.TempDir()).Output()
	if err != nil {
		t.Fatalf("security-test --write-policy: %v", err)
	}
	policy := strings.TrimSpace(string(out))
	s := serveWith(t, filepath.Join(t.TempDir(), "data"), "", "--policy", policy)
	args := []string{"security-test", "--addr", s.addr, "--data", s.data, "--corpus", corpus,
		"--canary", wasm["add"], "--server-pid", fmt.Sprint(s.cmd.Process.Pid), "--policy", policy}
	if only := os.Getenv("SECTEST_ONLY"); only != "" {
		args = append(args, "--only", only) // to run some cases while working on them
	}
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "UDFHOST_TOKEN=")
	var stdout, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &errOut
	err = cmd.Run()

	type line struct {
		Case     *string `json:"case"`
		Stopped  bool    `json:"stopped"`
		Audited  bool    `json:"audited"`
		CanaryOK bool    `json:"canary_ok"`
		Detail   string  `json:"detail"`
		Summary  bool    `json:"summary"`
		Cases    int     `json:"cases"`
		Passed   int     `json:"passed"`
	}
	var cases []line
	var sum *line
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l line
		if jerr := json.Unmarshal(sc.Bytes(), &l); jerr != nil {
			t.Fatalf("output line %q is not JSON: %v", sc.Text(), jerr)
		}
		switch {
		case l.Summary:
			sum = &l
		case l.Case != nil:
			cases = append(cases, l)
		default:
			t.Errorf("output line %q is neither a case nor the summary", sc.Text())
		}
	}
	for _, c := range cases {
		if !c.Stopped || !c.Audited || !c.CanaryOK {
			t.Errorf("case %s: stopped=%v audited=%v canary_ok=%v: %s", *c.Case, c.Stopped, c.Audited, c.CanaryOK, c.Detail)
		}
	}
	if sum == nil || sum.Cases != len(cases) || (os.Getenv("SECTEST_ONLY") == "" && sum.Cases < 40) {
		t.Fatalf("summary %+v for %d case lines; want one summary counting at least 40 cases (exit: %v; stderr: %s)", sum, len(cases), err, errOut.String())
	}
	if err != nil || sum.Passed != sum.Cases {
		t.Errorf("security-test: %v (%d of %d passed); stderr: %s", err, sum.Passed, sum.Cases, errOut.String())
	}
	// Guest output (fd_write_flood) must not have reached the server's log.
	if strings.Contains(s.logs(), "UDFHOST-SECTEST-FD-FLOOD-MARKER") {
		t.Error("guest stdout/stderr reached the server's log")
	}
}
