package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// server is a `udfhost serve` child on free ports with a fresh data dir.
type server struct {
	bin, data, addr string
	cmd             *exec.Cmd
	token           string
	conn            *grpc.ClientConn
}

var readyRE = regexp.MustCompile(`msg=ready grpc=(\S+) http=(\S+)`)

func startServer(bin string) (*server, error) { return startServerArgs(bin) }

func startServerArgs(bin string, extra ...string) (*server, error) {
	data, err := os.MkdirTemp("", "udfhost-bench-")
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin, data: data}
	s.cmd = exec.Command(bin, append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, extra...)...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
	}()
	select {
	case s.addr = <-ready:
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("server not ready after 30 s")
	}
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		return nil, err
	}
	s.token = strings.TrimSpace(string(tok))
	s.conn, err = grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	return s, err
}

func (s *server) stop() {
	if s.conn != nil {
		s.conn.Close()
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	os.RemoveAll(s.data)
}

func (s *server) ctx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.token), cancel
}

// cli runs the udfhost CLI against the server and returns its stdout.
func (s *server) cli(args ...string) ([]byte, error) {
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "UDFHOST_ADDR="+s.addr, "UDFHOST_DATA="+s.data, "UDFHOST_TOKEN="+s.token)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("udfhost %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// uploadBytes uploads a module and returns its artifact id.
func (s *server) uploadBytes(name string, wasm []byte) (string, error) {
	f, err := os.CreateTemp("", name+"-*.wasm")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	f.Write(wasm)
	f.Close()
	out, err := s.cli("artifact", "upload", "--name", name, f.Name())
	if err != nil {
		return "", err
	}
	var art struct{ ID string }
	if err := json.Unmarshal(out, &art); err != nil {
		return "", err
	}
	return art.ID, nil
}

func (s *server) createFunction(name, artifact, export, sig string) error {
	_, err := s.cli("function", "create", "--name", name, "--artifact", artifact, "--export", export, "--signature", sig)
	return err
}

func (s *server) functions() udfhostv1.FunctionServiceClient {
	return udfhostv1.NewFunctionServiceClient(s.conn)
}

func (s *server) invoker() udfhostv1.InvokeServiceClient {
	return udfhostv1.NewInvokeServiceClient(s.conn)
}

// workerPIDs returns the pid of each pod's live worker, from the audit
// log's worker.started and worker.stopped records (a pod evicted by the
// live-pod cap has none).
func (s *server) workerPIDs() (map[string]int, error) {
	b, err := os.ReadFile(filepath.Join(s.data, "audit", "audit.log"))
	if err != nil {
		return nil, err
	}
	pids := map[string]int{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		var rec struct {
			Type    string            `json:"type"`
			Pod     string            `json:"pod"`
			Details map[string]string `json:"details"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		pid, err := strconv.Atoi(rec.Details["pid"])
		switch {
		case err != nil:
		case rec.Type == "worker.started":
			pids[rec.Pod] = pid
		case rec.Type == "worker.stopped" && pids[rec.Pod] == pid:
			delete(pids, rec.Pod)
		}
	}
	return pids, nil
}

// rssKiB reads a process's resident set size.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}
