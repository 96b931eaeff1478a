package e2e

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/jsonrows"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// restart stops the server and starts it again on the same data directory
// (new ports), as an operator's restart would.
func (s *server) restart() {
	s.t.Helper()
	s.conn.Close()
	if err := s.stop(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	s.cmd = exec.Command(binPath, "serve", "--data", s.data, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	ready := make(chan [2]string, 1)
	go func(cmd *exec.Cmd, exited chan struct{}) {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- [2]string{m[1], m[2]}
			}
		}
		cmd.Wait()
		close(exited)
	}(s.cmd, s.exited)
	select {
	case a := <-ready:
		s.addr, s.http = a[0], a[1]
	case <-s.exited:
		s.t.Fatalf("server exited before ready after restart:\n%s", s.logs())
	case <-time.After(30 * time.Second):
		s.t.Fatalf("server not ready 30 s after restart:\n%s", s.logs())
	}
	if s.conn, err = grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		s.t.Fatal(err)
	}
}

func TestQuarantineAfterRepeatedViolations(t *testing.T) {
	s := startServer(t)
	spinID := s.upload("loop")
	s.createFunction("spin", spinID, "spin", "(BIGINT) -> BIGINT")
	s.createFunction("add", s.upload("add"), "add", "(BIGINT, BIGINT) -> BIGINT")
	art, err := s.artifacts().GetArtifact(s.ctx(), &udfhostv1.GetArtifactRequest{Id: spinID})
	if err != nil {
		t.Fatal(err)
	}
	spin := func(v int64) (*udfhostv1.InvokeResponse, error) {
		return s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "spin", Batch: bigints([]int64{v})})
	}
	for i := range 3 {
		if _, err := spin(-1); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("looping call %d: %v; want DEADLINE_EXCEEDED", i+1, err)
		}
	}

	// The fourth call is refused without running, even a good batch.
	assertRefused := func(when string) {
		t.Helper()
		start := time.Now()
		_, err := spin(5)
		msg := status.Convert(err).Message()
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(msg, "quarantined after 3 sandbox violations") ||
			!strings.Contains(msg, "deadline") || !strings.Contains(msg, `"udfhost artifact release `+spinID+`"`) {
			t.Fatalf("%s: call to a quarantined artifact: %v; want FAILED_PRECONDITION naming it and how to release it", when, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: refusal took %s; it must not wait for a worker", when, took)
		}
	}
	assertRefused("after 3 violations")
	violations := 0
	quarantined := false
	for _, r := range s.auditRecords() {
		switch r.Type {
		case "sandbox.violation":
			if r.Details["class"] == "timeout" && r.Details["function"] == "spin" && strings.HasPrefix(r.Pod, "spiffe://") {
				violations++
			}
		case "artifact.quarantined":
			quarantined = r.Details["digest"] == art.Digest && strings.HasPrefix(r.Pod, "spiffe://") &&
				strings.Contains(r.Reason, "deadline") && r.Decision == "deny"
		}
	}
	if violations != 3 || !quarantined {
		t.Errorf("audit log: %d timeout violations (want 3), artifact.quarantined with pod, digest and reason: %v", violations, quarantined)
	}

	// Other artifacts are unaffected, on a stream too: the refused batch
	// gets its error and the stream goes on.
	st, err := s.invoker().InvokeStream(s.ctx())
	if err != nil {
		t.Fatal(err)
	}
	addBatch := bigints([]int64{40})
	addBatch.Columns = append(addBatch.Columns, bigints([]int64{2}).Columns...)
	for i, req := range []*udfhostv1.InvokeRequest{
		{Function: "spin", Batch: bigints([]int64{5}), Seq: 1},
		{Function: "add", Batch: addBatch, Seq: 2},
	} {
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && (resp.Error == nil || codes.Code(resp.Error.Code) != codes.FailedPrecondition) {
			t.Errorf("stream batch to quarantined artifact: %+v; want a FAILED_PRECONDITION batch error", resp)
		}
		if i == 1 && (resp.Error != nil || jsonrows.Values(resp)[0] != int64(42)) {
			t.Errorf("stream batch to add: %+v; want 42", resp)
		}
	}
	st.CloseSend()

	s.restart()
	assertRefused("after a restart")
	var got struct {
		Quarantined bool   `json:"quarantined"`
		Reason      string `json:"quarantine_reason"`
	}
	json.Unmarshal([]byte(s.mustCLI("", "artifact", "get", spinID)), &got)
	if !got.Quarantined || !strings.Contains(got.Reason, "deadline") {
		t.Errorf("artifact get after restart: %+v; want quarantined with the reason", got)
	}

	out := s.mustCLI("", "artifact", "release", spinID)
	got.Quarantined = true
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Quarantined {
		t.Fatalf("artifact release printed %q (%v); want the artifact, not quarantined", out, err)
	}
	if resp, err := spin(5); err != nil || jsonrows.Values(resp)[0] != int64(5) {
		t.Fatalf("call after release: %v %v; want 5", resp, err)
	}
	if _, err := spin(-1); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("looping call after release: %v; want DEADLINE_EXCEEDED", err)
	}
	released := false
	for _, r := range s.auditRecords() {
		if r.Type == "artifact.released" && r.Resource == "artifact/"+spinID && r.Decision == "allow" {
			released = true
		}
	}
	if !released {
		t.Error("no artifact.released record for the release")
	}
}
