package sectest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuditMatch(t *testing.T) {
	rec := Record{
		Seq: 7, Type: "sandbox.violation", Actor: "udfhost", Pod: "spiffe://x/pod-a",
		Resource: "function/default/f1", Decision: "deny", Reason: "batch exceeded its deadline of 2s",
		Details: map[string]string{"class": "timeout", "rows": "1"},
	}
	vars := map[string]string{"function": "function/default/f1", "pod": "spiffe://x/pod-a", "local": "127.0.0.1:5"}
	tests := []struct {
		name string
		m    string // AuditMatch as JSON
		want bool
	}{
		{"type only", `{"type":"sandbox.violation"}`, true},
		{"one of types", `{"type":["auth.failed","sandbox.violation"]}`, true},
		{"other type", `{"type":"auth.failed"}`, false},
		{"templates", `{"type":"sandbox.violation","resource":"{function}","pod":"{pod}"}`, true},
		{"other resource", `{"type":"sandbox.violation","resource":"function/default/f2"}`, false},
		{"other pod", `{"type":"sandbox.violation","pod":"spiffe://x/pod-b"}`, false},
		{"decision", `{"type":"sandbox.violation","decision":"deny"}`, true},
		{"decision one of", `{"type":"sandbox.violation","decision":["error","deny"]}`, true},
		{"wrong decision", `{"type":"sandbox.violation","decision":"allow"}`, false},
		{"reason substring", `{"type":"sandbox.violation","reason":"deadline"}`, true},
		{"reason one of", `{"type":"sandbox.violation","reason":["trap","deadline"]}`, true},
		{"reason missing", `{"type":"sandbox.violation","reason":"trap"}`, false},
		{"details", `{"type":"sandbox.violation","details":{"class":"timeout"}}`, true},
		{"details one of", `{"type":"sandbox.violation","details":{"class":["trap","timeout"]}}`, true},
		{"details differ", `{"type":"sandbox.violation","details":{"class":"trap"}}`, false},
		{"details key absent", `{"type":"sandbox.violation","details":{"layer":"seccomp"}}`, false},
		{"actor", `{"type":"sandbox.violation","actor":"{local}"}`, false},
		{"type prefix", `{"type":"sandbox.*"}`, true},
		{"type prefix among others", `{"type":["auth.failed","sandbox.*"],"decision":"deny"}`, true},
		{"other type prefix", `{"type":"function.*"}`, false},
		{"prefix is not a substring", `{"type":"violation*"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m AuditMatch
			if err := json.Unmarshal([]byte(tc.m), &m); err != nil {
				t.Fatal(err)
			}
			r, err := m.Resolve(vars)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Match(rec); got != tc.want {
				t.Errorf("Match(%s) = %v, want %v", r, got, tc.want)
			}
		})
	}
}

func TestAuditResolveRefusesUnknownFacts(t *testing.T) {
	m := AuditMatch{Type: OneOf{"auth.failed"}, Actor: "{local}", Details: map[string]OneOf{"remote": {"{local}"}}}
	if _, err := m.Resolve(map[string]string{"pod": "p"}); err == nil || !strings.Contains(err.Error(), "{local}") {
		t.Errorf("Resolve without {local}: %v; want an error naming it", err)
	}
	// A fact learned as empty is as good as unknown: it must not match
	// records whose field is empty.
	if _, err := m.Resolve(map[string]string{"local": ""}); err == nil {
		t.Error("Resolve with an empty {local} succeeded")
	}
	r, err := m.Resolve(map[string]string{"local": "127.0.0.1:9"})
	if err != nil || r.Actor != "127.0.0.1:9" || r.Details["remote"][0] != "127.0.0.1:9" || m.Actor != "{local}" {
		t.Errorf("Resolve = %+v, %v; want both templates filled and the original untouched", r, err)
	}
}

func TestAuditLogFollowsAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	old := `{"seq":1,"type":"server.started"}` + "\n"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := openAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	appendLog := func(s string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	// A record written in two parts is read once it is complete.
	appendLog(`{"seq":2,"type":"auth.failed","reason":"missing`)
	if recs, err := l.since(0); err != nil || len(recs) != 0 {
		t.Fatalf("since(0) with a half-written record = %v, %v; want nothing (and nothing from before opening)", recs, err)
	}
	appendLog(` bearer token"}` + "\n" + `{"seq":3,"type":"sandbox.violation"}` + "\n")
	recs, err := l.since(0)
	if err != nil || len(recs) != 2 || recs[0].Reason != "missing bearer token" || recs[1].Seq != 3 {
		t.Fatalf("since(0) = %+v, %v; want records 2 and 3", recs, err)
	}
	if recs, _ := l.since(2); len(recs) != 1 || recs[0].Seq != 3 {
		t.Errorf("since(2) = %+v; want record 3", recs)
	}
	if last, _ := l.last(); last != 3 {
		t.Errorf("last = %d, want 3", last)
	}
	appendLog("not json\n")
	if _, err := l.since(0); err == nil {
		t.Error("a corrupt line was accepted")
	}
}
