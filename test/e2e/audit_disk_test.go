package e2e

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

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
		_, errOut, code := d.cli("", "artifact", "upload", wasm["add"])
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
	if out, errOut, code := d.cli("", "audit", "verify", "--file", log); code != 0 {
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
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// The stop record was written after the copy; what the copy holds
	// must verify on its own.
	if err := os.WriteFile(cp, want, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := d.cli("", "audit", "verify", "--file", cp); code != 0 {
		t.Fatalf("verify after space came back: exit %d: %s%s", code, out, errOut)
	}
}

// A crash mid-write leaves an incomplete final line: `audit verify` says so
// and what to do, serve starts anyway, removes it, records the repair, and
// the log verifies again.
func TestServeRepairsTornAuditLine(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	d := serveOn(t, data, "")
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
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
	_, errOut, code := d.cli("", "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "an incomplete record") || !strings.Contains(errOut, "serve") {
		t.Fatalf("verify of a torn log: exit %d, %q; want exit 1 saying serve repairs it", code, errOut)
	}

	d = serveOn(t, data, "")
	if err := d.stop(); err != nil {
		t.Fatalf("stop after repair: %v", err)
	}
	if out, errOut, code := d.cli("", "audit", "verify"); code != 0 {
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
