package main

import (
	"context"
	"crypto/sha256"
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

// TestAuditTail: `udfhost audit tail` prints the log's own lines, all of
// them for an admin, from --since and of --type when asked, for an
// auditor too; a developer is refused. (--follow: test/e2e.)
func TestAuditTail(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (the server's jailed workers)")
	}
	const admin, auditor, dev = "ops-0123456789abcdef0123456789abcdef", "aud-0123456789abcdef0123456789abcdef", "ana-0123456789abcdef0123456789abcdef"
	as, us, ds := sha256.Sum256([]byte(admin)), sha256.Sum256([]byte(auditor)), sha256.Sum256([]byte(dev))
	p := policies.Default()
	p.Principals = []*policies.Principal{
		{Name: "ops", TokenSHA256: as[:], Roles: map[string]policies.Role{"*": policies.RoleAdmin}},
		{Name: "aud", TokenSHA256: us[:], Roles: map[string]policies.Role{"*": policies.RoleAuditor}},
		{Name: "ana", TokenSHA256: ds[:], Roles: map[string]policies.Role{"default": policies.RoleDeveloper}},
	}
	data := filepath.Join(t.TempDir(), "data")
	s := server.New(server.Config{DataDir: data, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Policy: p, Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.Shutdown(ctx)
	})
	// A refusal, audited: the log has an access.denied record.
	if _, err := runRoot(t, "--addr", s.Addr(), "--token", dev, "audit", "tail"); err == nil || !strings.Contains(errorLine(err), "permission denied") {
		t.Errorf("audit tail as a developer: %v, want permission denied", err)
	}
	out, err := runRoot(t, "--addr", s.Addr(), "--token", admin, "audit", "tail")
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(data, "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(log), out) || strings.Count(out, "\n") < 2 {
		t.Errorf("audit tail printed\n%s\nwant the log's lines\n%s", out, log)
	}
	out, err = runRoot(t, "--addr", s.Addr(), "--token", auditor, "audit", "tail", "--since", "2", "--type", audit.TypeAccessDenied)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"type":"access.denied"`) || !strings.Contains(string(log), lines[0]+"\n") {
		t.Errorf("--since 2 --type access.denied printed %q, want the one access.denied line of the log", out)
	}
}
