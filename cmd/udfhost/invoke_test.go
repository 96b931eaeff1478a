package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/server"
	"github.com/udfhost/udfhost/policies"
)

// TestInvokeThreePartName: `udfhost invoke --function ORG.ENV.FUNCTION`
// and `function get ORG.ENV.NAME` without --env reach the function; a
// name in another org is NOT_FOUND and an --env that disagrees with the
// middle part is refused.
func TestInvokeThreePartName(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (the server's jailed workers)")
	}
	dir := t.TempDir()
	wat := filepath.Join(dir, "add.wat")
	wasm := filepath.Join(dir, "add.wasm")
	os.WriteFile(wat, []byte(`(module (func (export "add") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1))))`), 0o600)
	if b, err := exec.Command("wat2wasm", "-o", wasm, wat).CombinedOutput(); err != nil {
		t.Skipf("wat2wasm (make deps installs wabt): %v\n%s", err, b)
	}
	const tok = "ops-0123456789abcdef0123456789abcdef"
	sum := sha256.Sum256([]byte(tok))
	p := policies.Default()
	p.Org = "acme"
	p.Principals = []*policies.Principal{{Name: "ops", TokenSHA256: sum[:], Roles: map[string]policies.Role{policies.AllEnvironments: policies.RoleAdmin}}}
	s := server.New(server.Config{
		DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Policy: p,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.Shutdown(ctx)
	})
	global := []string{"--addr", s.Addr(), "--token", tok, "--data", filepath.Join(dir, "nowhere")}
	run := func(args ...string) (string, error) { return runRoot(t, append(global, args...)...) }

	out, err := run("artifact", "upload", wasm)
	if err != nil {
		t.Fatalf("artifact upload: %v", err)
	}
	var art artifactJSON
	if err := json.Unmarshal([]byte(out), &art); err != nil {
		t.Fatalf("artifact upload printed %q: %v", out, err)
	}
	if _, err := run("function", "create", "--name", "add", "--artifact", art.ID, "--export", "add", "--signature", "(BIGINT, BIGINT) -> BIGINT"); err != nil {
		t.Fatalf("function create: %v", err)
	}

	if out, err := run("function", "get", "acme.default.add"); err != nil || !strings.Contains(out, `"add"`) {
		t.Errorf("function get acme.default.add: %q, %v", out, err)
	}
	stdin := os.Stdin
	t.Cleanup(func() { os.Stdin = stdin })
	invoke := func(args ...string) (string, error) {
		in := filepath.Join(t.TempDir(), "rows")
		os.WriteFile(in, []byte("[2, 3]\n"), 0o600)
		f, err := os.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		os.Stdin = f
		return run(append([]string{"invoke"}, args...)...)
	}
	for _, args := range [][]string{{"--function", "acme.default.add"}, {"--function", "acme.default.add", "--env", "default"}, {"--function", "add"}} {
		if out, err := invoke(args...); err != nil || strings.TrimSpace(out) != "5" {
			t.Errorf("invoke %s: %q, %v; want 5", strings.Join(args, " "), out, err)
		}
	}
	if _, err := invoke("--function", "globex.default.add"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("invoke --function globex.default.add: %v, want not found", err)
	}
	if _, err := invoke("--function", "acme.default.add", "--env", "other"); err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Errorf("invoke --function acme.default.add --env other: %v, want refused naming both", err)
	}
}
