package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type auditRecord struct {
	Seq      uint64            `json:"seq"`
	Type     string            `json:"type"`
	Pod      string            `json:"pod"`
	Resource string            `json:"resource"`
	Decision string            `json:"decision"`
	Reason   string            `json:"reason"`
	Details  map[string]string `json:"details"`
}

func (s *server) auditPath() string { return filepath.Join(s.data, "audit", "audit.log") }

// auditRecords reads the log as it is on disk now: every record is fsynced
// before the action it describes returns.
func (s *server) auditRecords() []auditRecord {
	s.t.Helper()
	b, err := os.ReadFile(s.auditPath())
	if err != nil {
		s.t.Fatal(err)
	}
	var out []auditRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r auditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			s.t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func (s *server) hasAudit(typ string) bool {
	for _, r := range s.auditRecords() {
		if r.Type == typ {
			return true
		}
	}
	return false
}

func (s *server) ctxNoToken() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s.t.Cleanup(cancel)
	return ctx
}

func TestAuditVerifyDetectsOneChangedByte(t *testing.T) {
	s := startServer(t)
	s.createFunction("add", s.upload("add"), "add", "(BIGINT, BIGINT) -> BIGINT")
	s.mustCLI("[1, 2]\n", "invoke", "--function", "add")
	if err := s.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	for _, want := range []string{"server.started", "sandbox.layers", "upload.url_issued", "upload.received", "artifact.committed",
		"worker.started", "function.created", "invocation.summary", "worker.stopped", "server.stopped"} {
		if !s.hasAudit(want) {
			t.Errorf("no %s record in the audit log", want)
		}
	}
	out := s.mustCLI("", "audit", "verify")
	if !strings.Contains(out, `"ok": true`) {
		t.Fatalf("verify: %s", out)
	}

	log, _ := os.ReadFile(s.auditPath())
	lines := bytes.SplitAfter(log, []byte("\n"))
	// Change one byte inside record 3's type, keeping the JSON valid.
	i := bytes.Index(lines[2], []byte(`"type":"`)) + len(`"type":"`)
	lines[2][i] ^= 0x20
	if err := os.WriteFile(s.auditPath(), bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := s.cli("", "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "record 3") {
		t.Errorf("verify after tampering: exit %d, stderr %q; want exit 1 naming record 3", code, errOut)
	}
}
