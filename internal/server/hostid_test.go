package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostID(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "host-id")
	id, err := loadOrCreateHostID(path, "")
	if err != nil || !strings.HasPrefix(id, "h-") || len(id) != 18 {
		t.Fatalf("first start: %q, %v", id, err)
	}
	again, err := loadOrCreateHostID(path, "")
	if err != nil || again != id {
		t.Fatalf("restart: %q, %v; want %q", again, err, id)
	}
	if _, err := loadOrCreateHostID(path, "other"); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("a different --host-id: %v", err)
	}
	named := filepath.Join(dir, "named")
	if id, err := loadOrCreateHostID(named, "host-a"); err != nil || id != "host-a" {
		t.Fatalf("--host-id host-a: %q, %v", id, err)
	}
	for _, bad := range []string{"-a", "A", "a/b", strings.Repeat("a", 64)} {
		if _, err := loadOrCreateHostID(filepath.Join(dir, "x"), bad); err == nil {
			t.Errorf("host id %q accepted", bad)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "junk"), []byte("../x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateHostID(filepath.Join(dir, "junk"), ""); err == nil {
		t.Fatal("a malformed host-id file was accepted")
	}
}

// TestBadHostIDLeavesNoDataDir: a malformed --host-id is refused before
// the data directory is created.
func TestBadHostIDLeavesNoDataDir(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := New(Config{DataDir: data, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", HostID: "Host/A"})
	err := s.Start(context.Background())
	if err == nil {
		s.Shutdown(context.Background())
	}
	if err == nil || !strings.Contains(err.Error(), `host id "Host/A"`) {
		t.Fatalf("start: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the refused start left %s behind (%v)", data, err)
	}
}
