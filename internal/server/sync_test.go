package server

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSyncFailuresRateLimited: a store that keeps failing is logged once,
// then at most once per syncFailureLogEvery (with how many rounds were not
// logged), and its recovery once.
func TestSyncFailuresRateLimited(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{log: slog.New(slog.NewTextHandler(&buf, nil)), spec: &storeSpec{bucket: "b12", prefix: "p"}}
	var fl syncFailures
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	down := errors.New("dial tcp 127.0.0.1:7070: connection refused")
	steps := []struct {
		at  time.Duration
		err error
	}{
		{0, down}, {500 * time.Millisecond, down}, {time.Second, down},
		{syncFailureLogEvery + time.Second, down},
		{syncFailureLogEvery + 2*time.Second, nil}, {syncFailureLogEvery + 3*time.Second, nil},
		{syncFailureLogEvery + 4*time.Second, down},
	}
	for _, st := range steps {
		fl.report(s, st.err, t0.Add(st.at))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"store sync failed", "store sync failed", "store reachable again", "store sync failed"}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) || !strings.Contains(lines[i], "store=s3://b12/p/") {
			t.Errorf("line %d = %s, want %q naming the store", i, lines[i], w)
		}
	}
	if !strings.Contains(lines[1], "suppressed=2") {
		t.Errorf("second failure line does not count the 2 rounds not logged: %s", lines[1])
	}
}
