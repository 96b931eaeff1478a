package e2e

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestAuditTailFollow: `udfhost audit tail --follow` prints each new
// record of its type as the log's own line as soon as it is written,
// rides out a restart of the server (tailing again from the record after
// the last one it printed, saying so on stderr), and exits 0 on SIGINT.
func TestAuditTailFollow(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	d := serveWith(t, data, "", "--listen", addr)

	tail := exec.Command(binPath, "audit", "tail", "--follow", "--type", "artifact.committed")
	tail.Env = append(os.Environ(), "UDFHOST_ADDR="+addr, "UDFHOST_DATA="+data, "UDFHOST_TOKEN=")
	stdout, err := tail.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	tail.Stderr = &stderr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	defer tail.Process.Kill()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 2<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s: audit tail ended; stderr: %s", what, stderr.String())
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no line within 20 s; stderr: %s", what, stderr.String())
		}
		return ""
	}
	logHas := func(line string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(data, "audit", "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(line+"\n")) {
			t.Errorf("printed %s, which is not a line of the log", line)
		}
	}

	d.mustCLI("", "artifact", "upload", wasm["add"])
	first := next("the first commit")
	if !strings.Contains(first, `"type":"artifact.committed"`) {
		t.Errorf("printed %s, want an artifact.committed record", first)
	}
	logHas(first)

	// A restart on the same address: the follower carries on.
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	d = serveWith(t, data, "", "--listen", addr)
	d.mustCLI("", "artifact", "upload", wasm["loop"])
	second := next("the commit after the restart")
	if !strings.Contains(second, `"type":"artifact.committed"`) || second == first {
		t.Errorf("after the restart printed %s, want the new artifact.committed record", second)
	}
	logHas(second)
	if !strings.Contains(stderr.String(), "tailing again from seq") {
		t.Errorf("stderr %q does not say the tail resumed", stderr.String())
	}

	tail.Process.Signal(syscall.SIGINT)
	for range lines {
	}
	if err := tail.Wait(); err != nil {
		t.Errorf("audit tail after SIGINT: %v (stderr %s), want exit 0", err, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe to write from the command's stderr
// copier while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)
