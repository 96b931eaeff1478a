package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/server"
	"github.com/udfhost/udfhost/policies"
)

// TestAuditRead: `udfhost audit read` prints, for an admin, the log's own
// lines from --since, at most --limit of them; a developer is refused.
func TestAuditRead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (the server's jailed workers)")
	}
	dir := t.TempDir()
	const admin, dev = "ops-0123456789abcdef0123456789abcdef", "ana-0123456789abcdef0123456789abcdef"
	as, ds := sha256.Sum256([]byte(admin)), sha256.Sum256([]byte(dev))
	p := policies.Default()
	p.Principals = []*policies.Principal{
		{Name: "ops", TokenSHA256: as[:], Roles: map[string]policies.Role{"*": policies.RoleAdmin}},
		{Name: "ana", TokenSHA256: ds[:], Roles: map[string]policies.Role{"default": policies.RoleDeveloper}},
	}
	data := filepath.Join(dir, "data")
	s := server.New(server.Config{DataDir: data, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Policy: p, Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.Shutdown(ctx)
	})
	if _, err := runRoot(t, "--addr", s.Addr(), "--token", dev, "audit", "read"); err == nil || !strings.Contains(errorLine(err), "permission denied") {
		t.Errorf("audit read as a developer: %v, want permission denied", err)
	}
	out, err := runRoot(t, "--addr", s.Addr(), "--token", admin, "audit", "read", "--since", "2", "--limit", "1")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("--since 2 --limit 1 printed %d lines: %q", len(lines), out)
	}
	var r audit.Record
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatal(err)
	}
	if r.Seq != 2 || !r.HashOK() {
		t.Errorf("printed record %d (hash verifies: %v), want record 2 with its hash", r.Seq, r.HashOK())
	}
	log, err := os.ReadFile(filepath.Join(data, "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if logLines := strings.Split(string(log), "\n"); len(logLines) < 2 || logLines[1] != lines[0] {
		t.Errorf("printed %q, want the log's second line", lines[0])
	}
}

// TestAuditReadEmbeddedDefault: without a policy file the admin token of
// the data dir reads the whole log, the server's own records included.
func TestAuditReadEmbeddedDefault(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (the server's jailed workers)")
	}
	data := filepath.Join(t.TempDir(), "data")
	s := server.New(server.Config{DataDir: data, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.Shutdown(ctx)
	})
	out, err := runRoot(t, "--addr", s.Addr(), "--data", data, "audit", "read", "--type", audit.TypeServerStarted)
	if err != nil {
		t.Fatal(err)
	}
	var r audit.Record
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("audit read printed %q: %v", out, err)
	}
	if r.Type != audit.TypeServerStarted || !r.HashOK() {
		t.Errorf("audit read --type %s printed %+v, want the start, with its hash", audit.TypeServerStarted, r)
	}
}

// TestAuditDirOf: the offline audit commands name a missing audit
// directory as such, not a key or log file missing under it.
func TestAuditDirOf(t *testing.T) {
	data := t.TempDir()
	g := &globals{data: data}
	if _, err := g.auditDirOf(""); err == nil || !strings.Contains(err.Error(), "no audit log at "+filepath.Join(data, "audit")) {
		t.Errorf("missing audit directory: %v", err)
	}
	if err := os.Mkdir(filepath.Join(data, "audit"), 0o700); err != nil {
		t.Fatal(err)
	}
	if dir, err := g.auditDirOf(""); err != nil || dir != filepath.Join(data, "audit") {
		t.Errorf("default: %q, %v", dir, err)
	}
	if dir, err := g.auditDirOf(data); err != nil || dir != data {
		t.Errorf("--dir: %q, %v", dir, err)
	}
}
