package audit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestActorFields: the SPIFFE ID and network of an actor are written
// right after it, and a record without them is written as before (its
// line has neither key), so logs written before they existed still
// verify.
func TestActorFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	ctx := context.Background()
	if _, err := l.Append(ctx, Event{Type: TypeAccessDenied, Actor: "tm", SPIFFEID: "spiffe://acme.example/tm", Network: "payments-link", Decision: Deny, Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, Event{Type: TypeServerStarted, Actor: "udfhost", Decision: Allow}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	lines := readLines(t, path)
	if want := `"actor":"tm","spiffe_id":"spiffe://acme.example/tm","network":"payments-link","decision":"deny"`; !strings.Contains(string(lines[0]), want) {
		t.Errorf("line 1 %s does not contain %s", lines[0], want)
	}
	if s := string(lines[1]); strings.Contains(s, "spiffe_id") || strings.Contains(s, "network") {
		t.Errorf("line 2 %s has actor fields it was not given", s)
	}
	if _, err := Verify(path); err != nil {
		t.Fatal(err)
	}
}

func TestHostStamped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := OpenWithOptions(path, Options{Host: "host-a"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := l.Append(context.Background(), Event{Type: TypeServerStarted, Decision: Allow})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Host != "host-a" {
		t.Fatalf("record host = %q", rec.Host)
	}
	l.Close()
	if _, err := Verify(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"host":"host-a"`) {
		t.Fatalf("log line lacks the host: %s", b)
	}
}
