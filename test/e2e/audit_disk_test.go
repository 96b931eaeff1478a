package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemon is a `udfhost serve` on a data directory the test chose (and may
// reuse across restarts), started through sh so that the test can prepare
// its mount namespace first.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	data   string
	addr   string
	exited chan struct{}
	mu     sync.Mutex
	log    bytes.Buffer
}

// serveOn starts serve on data. prelude, if not empty, is shell run first
// in the server's own private mount namespace ($DATA is the data dir).
func serveOn(t *testing.T, data, prelude string) *daemon {
	t.Helper()
	d := &daemon{t: t, data: data, exited: make(chan struct{})}
	script := `exec "$BIN" serve --data "$DATA" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0`
	if prelude != "" {
		script = prelude + " && " + script
	}
	d.cmd = exec.Command("/bin/sh", "-c", script)
	d.cmd.Env = append(os.Environ(), "BIN="+binPath, "DATA="+data)
	// Go makes the new namespace's mounts private before exec.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		d.cmd.Wait()
		close(d.exited)
	}()
	select {
	case d.addr = <-ready:
	case <-d.exited:
		t.Fatalf("server exited before ready:\n%s", d.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("server not ready after 30 s:\n%s", d.logs())
	}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", d.logs())
		}
	})
	return d
}

func (d *daemon) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// path returns where p (a path in the server's mount namespace) is seen
// from the test's.
func (d *daemon) path(p string) string {
	return filepath.Join("/proc", strconv.Itoa(d.cmd.Process.Pid), "root", p)
}

// stop sends SIGTERM and returns the exit status.
func (d *daemon) stop() int {
	select {
	case <-d.exited:
	default:
		d.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		d.t.Error("server did not stop within 30 s of SIGTERM")
	}
	return d.cmd.ProcessState.ExitCode()
}

// udfhost runs the CLI against data (and addr, if set) and returns stdout,
// stderr and the exit status.
func udfhost(t *testing.T, data, addr string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "UDFHOST_ADDR="+addr, "UDFHOST_DATA="+data, "UDFHOST_TOKEN=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run udfhost %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// A full disk under the audit log: audited actions are refused while it is
// full, the log stays intact, they are taken again once there is space,
// and the server stops cleanly. The log is on a 256 KiB tmpfs mounted in
// the server's private mount namespace.
func TestAuditDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	data := filepath.Join(t.TempDir(), "data")
	d := serveOn(t, data, `mkdir -p "$DATA/audit" && mount -t tmpfs -o size=256k udfhost-e2e-audit "$DATA/audit"`)
	upload := func() (string, int) {
		_, errOut, code := udfhost(t, data, d.addr, "artifact", "upload", wasm["add"])
		return errOut, code
	}
	if errOut, code := upload(); code != 0 {
		t.Fatalf("upload: exit %d: %s", code, errOut)
	}
	// Fill the filesystem, then upload until the log's last page is full
	// too: each upload is audited, so they fail from then on.
	filler := d.path(filepath.Join(data, "audit", "filler"))
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for _, err = f.Write(make([]byte, 4096)); err == nil; _, err = f.Write(make([]byte, 4096)) {
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fill: %v", err)
	}
	var errOut string
	var code int
	for range 50 {
		if errOut, code = upload(); code != 0 {
			break
		}
	}
	// Refused at whichever audited step found the disk full: the upload
	// URL (UNAVAILABLE, naming the full disk) or the PUT (500).
	if code == 0 || !strings.Contains(errOut, "no space left on device") && !strings.Contains(errOut, "audit log unavailable") {
		t.Fatalf("upload on a full disk: exit %d, %q; want refused because the audit log cannot be written", code, errOut)
	}
	t.Logf("upload on a full disk: %s", errOut)
	for range 3 {
		if errOut, code := upload(); code == 0 {
			t.Fatalf("upload while full succeeded: %s", errOut)
		}
	}
	log := d.path(filepath.Join(data, "audit", "audit.log"))
	if out, errOut, code := udfhost(t, data, "", "audit", "verify", "--file", log); code != 0 {
		t.Fatalf("verify while full: exit %d: %s%s", code, out, errOut)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if errOut, code := upload(); code != 0 {
		t.Fatalf("upload once there is space: exit %d: %s", code, errOut)
	}
	// The log must be read before the server exits: its tmpfs goes with it.
	want, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "audit.log")
	if code := d.stop(); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	// The stop record was written after the copy; what the copy holds
	// must verify on its own.
	if err := os.WriteFile(cp, want, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := udfhost(t, data, "", "audit", "verify", "--file", cp); code != 0 {
		t.Fatalf("verify after space came back: exit %d: %s%s", code, out, errOut)
	}
}

// A crash mid-write leaves an incomplete final line: `audit verify` says so
// and what to do, serve starts anyway, removes it, records the repair, and
// the log verifies again.
func TestServeRepairsTornAuditLine(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	d := serveOn(t, data, "")
	if code := d.stop(); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	log := filepath.Join(data, "audit", "audit.log")
	before, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	next := bytes.Count(before, []byte("\n")) + 1
	torn := `{"seq":` + strconv.Itoa(next) + `,"time":"2026-12-01T`
	if err := os.WriteFile(log, append(bytes.Clone(before), torn...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := udfhost(t, data, "", "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "an incomplete record") || !strings.Contains(errOut, "serve") {
		t.Fatalf("verify of a torn log: exit %d, %q; want exit 1 saying serve repairs it", code, errOut)
	}

	d = serveOn(t, data, "")
	if code := d.stop(); code != 0 {
		t.Fatalf("stop after repair: exit %d", code)
	}
	if out, errOut, code := udfhost(t, data, "", "audit", "verify"); code != 0 {
		t.Fatalf("verify after repair: exit %d: %s%s", code, out, errOut)
	}
	after, _ := os.ReadFile(log)
	if !bytes.HasPrefix(after, before) {
		t.Fatal("the repair changed complete records")
	}
	first, _, _ := bytes.Cut(after[len(before):], []byte("\n"))
	for _, want := range []string{`"type":"audit.repaired"`, `"bytes_removed":"` + strconv.Itoa(len(torn)) + `"`, `"offset":"` + strconv.Itoa(len(before)) + `"`} {
		if !bytes.Contains(first, []byte(want)) {
			t.Errorf("first record after the repair %s lacks %s", first, want)
		}
	}
}
