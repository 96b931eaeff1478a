// Package e2e drives the real udfhost binary over real sockets: a server
// started per test on free ports, the CLI and a gRPC client against it.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

var (
	binPath string            // the udfhost binary under test
	wasm    map[string]string // example name -> built .wasm path
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "udfhost-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// build compiles the binary and every example the tests use.
func build(dir string) error {
	root := repoRoot()
	binPath = filepath.Join(dir, "udfhost")
	wasm = map[string]string{}
	run := func(env []string, name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run(nil, "go", "build", "-o", binPath, "./cmd/udfhost"); err != nil {
		return err
	}
	wats, _ := filepath.Glob(filepath.Join(root, "examples", "wat", "*.wat"))
	for _, w := range wats {
		name := strings.TrimSuffix(filepath.Base(w), ".wat")
		out := filepath.Join(dir, name+".wasm")
		if err := run(nil, "wat2wasm", "-o", out, w); err != nil {
			return err
		}
		wasm[name] = out
	}
	for _, pkg := range []string{"examples/go/upper", "examples/go/affine", "guest/internal/testudf"} {
		name := filepath.Base(pkg)
		out := filepath.Join(dir, name+".wasm")
		if err := run([]string{"GOOS=wasip1", "GOARCH=wasm"}, "go", "build", "-buildmode=c-shared", "-o", out, "./"+pkg); err != nil {
			return err
		}
		wasm["go-"+name] = out
	}
	return nil
}

// server is a running `udfhost serve` on free ports with its own data dir.
type server struct {
	t          *testing.T
	cmd        *exec.Cmd
	data       string
	addr, http string
	mu         sync.Mutex
	log        bytes.Buffer
	exited     chan struct{}
	conn       *grpc.ClientConn
	token      string
}

var readyRE = regexp.MustCompile(`msg=ready grpc=(\S+) http=(\S+)`)

// startServer starts a server on a new data directory.
func startServer(t *testing.T) *server {
	t.Helper()
	return serveOn(t, filepath.Join(t.TempDir(), "data"), "")
}

// serveOn starts a server on data (which it may reuse across restarts).
// prelude, if not empty, is shell run first in the server's own private
// mount namespace, with $DATA the data directory: a test mounts what the
// server alone must see there (see path).
func serveOn(t *testing.T, data, prelude string) *server {
	t.Helper()
	return serveWith(t, data, prelude)
}

// serveWith is serveOn with more arguments for serve (only without a
// prelude).
func serveWith(t *testing.T, data, prelude string, args ...string) *server {
	t.Helper()
	s := &server{t: t, data: data, exited: make(chan struct{})}
	s.cmd = exec.Command(binPath, append([]string{"serve", "--data", s.data, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, args...)...)
	if prelude != "" {
		s.cmd = exec.Command("/bin/sh", "-c", prelude+` && exec "$BIN" serve --data "$DATA" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0`)
		s.cmd.Env = append(os.Environ(), "BIN="+binPath, "DATA="+data)
		// Go makes the new namespace's mounts private before exec.
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	// What serve prints on stdout goes into the log too (logs), so a
	// test sees all of its output.
	s.cmd.Stdout = stdoutLog{s}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if m := readyRE.FindStringSubmatch(line); m != nil {
				ready <- [2]string{m[1], m[2]}
			}
		}
		s.cmd.Wait()
		close(s.exited)
	}()
	select {
	case a := <-ready:
		s.addr, s.http = a[0], a[1]
	case <-s.exited:
		t.Fatalf("server exited before ready:\n%s", s.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("server not ready after 30 s:\n%s", s.logs())
	}
	tok, err := os.ReadFile(filepath.Join(s.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	s.token = strings.TrimSpace(string(tok))
	s.conn, err = grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.conn.Close()
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs())
		}
	})
	return s
}

// path returns where p (a path in the server's mount namespace) is seen
// from the test's.
func (s *server) path(p string) string {
	return filepath.Join("/proc", strconv.Itoa(s.cmd.Process.Pid), "root", p)
}

// stdoutLog appends the server's stdout to its log.
type stdoutLog struct{ s *server }

func (w stdoutLog) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

func (s *server) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// stop sends SIGTERM and waits for a graceful exit; it returns the exit error.
func (s *server) stop() error {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("server did not stop within 30 s of SIGTERM")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("server exited with status %d", code)
	}
	return nil
}

// ctx returns a context carrying the admin token.
func (s *server) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	s.t.Cleanup(cancel)
	return withToken(ctx, s.token)
}

func (s *server) artifacts() udfhostv1.ArtifactServiceClient {
	return udfhostv1.NewArtifactServiceClient(s.conn)
}
func (s *server) invoker() udfhostv1.InvokeServiceClient {
	return udfhostv1.NewInvokeServiceClient(s.conn)
}

// cli runs the udfhost CLI against the server with stdin and returns
// stdout, stderr and the exit code.
func (s *server) cli(stdin string, args ...string) (string, string, int) {
	s.t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "UDFHOST_ADDR="+s.addr, "UDFHOST_DATA="+s.data, "UDFHOST_TOKEN=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			s.t.Fatalf("run udfhost %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// mustCLI is cli that fails the test on a non-zero exit.
func (s *server) mustCLI(stdin string, args ...string) string {
	s.t.Helper()
	out, errOut, code := s.cli(stdin, args...)
	if code != 0 {
		s.t.Fatalf("udfhost %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}
