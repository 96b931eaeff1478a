package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/jsonrows"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// upload uploads a built example through the CLI and returns its artifact id.
func (s *server) upload(example string) string {
	s.t.Helper()
	out := s.mustCLI("", "artifact", "upload", wasm[example])
	var art struct {
		ID     string `json:"id"`
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal([]byte(out), &art); err != nil || art.ID == "" || !strings.HasPrefix(art.Digest, "sha256:") {
		s.t.Fatalf("upload %s: bad output %q: %v", example, out, err)
	}
	return art.ID
}

func (s *server) createFunction(name, artifact, export, sig string) {
	s.t.Helper()
	s.mustCLI("", "function", "create", "--name", name, "--artifact", artifact, "--export", export, "--signature", sig)
}

func lines(out string) []string {
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

func TestInvokeExamples(t *testing.T) {
	s := startServer(t)
	s.createFunction("add", s.upload("add"), "add", "(BIGINT, BIGINT) -> BIGINT")
	s.createFunction("upper", s.upload("go-upper"), "upper", "(VARCHAR) -> VARCHAR")

	tests := []struct {
		fn, in, want string
	}{
		{"add", "[1, 2]\n[null, 3]\n[40, 2]\n[9223372036854775807, 1]\n[-5, null]\n",
			"3\nnull\n42\n-9223372036854775808\nnull\n"},
		// Full case mapping, as SQL engines: ß is SS.
		{"upper", "[\"hello\"]\n[null]\n[\"grüße\"]\n[\"\"]\n[\"straße\"]\n", "\"HELLO\"\nnull\n\"GRÜSSE\"\n\"\"\n\"STRASSE\"\n"},
		// A malformed row gets its own error line; the others still run.
		{"add", "[1, 1]\n[\"x\", 1]\n[2, 2]\n", "2\n{\"error\":\"bad input row: argument 1: want a number for BIGINT, got \\\"x\\\"\"}\n4\n"},
	}
	for _, tc := range tests {
		out := s.mustCLI(tc.in, "invoke", "--function", tc.fn)
		if out != tc.want {
			t.Errorf("invoke %s with %q:\n got %q\nwant %q", tc.fn, tc.in, out, tc.want)
		}
	}
}

func TestInvokeTenThousandRowsInOrder(t *testing.T) {
	s := startServer(t)
	s.createFunction("add", s.upload("add"), "add", "(BIGINT, BIGINT) -> BIGINT")
	s.createFunction("upper", s.upload("go-upper"), "upper", "(VARCHAR) -> VARCHAR")
	const n = 10000
	var in, inS strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "[%d, %d]\n", i, 3*i)
		fmt.Fprintf(&inS, "[\"row-%d-x\"]\n", i)
	}
	got := lines(s.mustCLI(in.String(), "invoke", "--function", "add"))
	gotS := lines(s.mustCLI(inS.String(), "invoke", "--function", "upper"))
	if len(got) != n || len(gotS) != n {
		t.Fatalf("got %d and %d result lines, want %d", len(got), len(gotS), n)
	}
	for i := 0; i < n; i++ {
		if want := fmt.Sprint(4 * i); got[i] != want {
			t.Fatalf("add row %d = %s, want %s", i, got[i], want)
		}
		if want := fmt.Sprintf("\"ROW-%d-X\"", i); gotS[i] != want {
			t.Fatalf("upper row %d = %s, want %s", i, gotS[i], want)
		}
	}
}

// TestRowErrorsAreNotNulls calls a guest that reports a row error for a 0
// argument: it must arrive as an error on that row only.
func TestRowErrorsAreNotNulls(t *testing.T) {
	s := startServer(t)
	s.createFunction("checked", s.upload("go-testudf"), "checked", "(BIGINT) -> BIGINT")
	resp, err := s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "checked", Batch: bigints([]int64{50, 0, 4})})
	if err != nil {
		t.Fatal(err)
	}
	vals := jsonrows.Values(resp)
	if vals[0] != int64(2) || vals[2] != int64(25) {
		t.Errorf("rows 0 and 2 = %v, %v; want 2, 25", vals[0], vals[2])
	}
	re, ok := vals[1].(jsonrows.RowError)
	if !ok || re.Error != "zero is not allowed" {
		t.Fatalf("row 1 = %#v, want the row error \"zero is not allowed\"", vals[1])
	}
	if len(resp.Errors) != 1 || resp.Errors[0].Row != 1 {
		t.Errorf("errors = %v, want exactly row 1", resp.Errors)
	}
}

// TestVarcharIsUTF8 checks both directions: VARCHAR input that is not
// UTF-8 is refused as INVALID_ARGUMENT naming the column and row; a guest's
// VARCHAR result row that is not UTF-8 becomes that row's error.
func TestVarcharIsUTF8(t *testing.T) {
	s := startServer(t)
	s.createFunction("upper", s.upload("go-upper"), "upper", "(VARCHAR) -> VARCHAR")
	s.createFunction("careless", s.upload("go-testudf"), "varchar_of_bytes", "(BYTES) -> VARCHAR")
	col := func(typ udfhostv1.SqlType) *udfhostv1.Column {
		return &udfhostv1.Column{
			Type:    typ,
			Offsets: []byte{0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 6, 0, 0, 0},
			Values:  []byte("ok\xff\xfeno"),
		}
	}
	_, err := s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{
		Function: "upper", Batch: &udfhostv1.Batch{Rows: 3, Columns: []*udfhostv1.Column{col(udfhostv1.SqlType_TYPE_VARCHAR)}},
	})
	if msg := status.Convert(err).Message(); status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, "column 1: row 1 is not valid UTF-8") {
		t.Errorf("invalid UTF-8 input: %v; want INVALID_ARGUMENT naming column 1, row 1", err)
	}

	resp, err := s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{
		Function: "careless", Batch: &udfhostv1.Batch{Rows: 3, Columns: []*udfhostv1.Column{col(udfhostv1.SqlType_TYPE_BYTES)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	vals := jsonrows.Values(resp)
	if vals[0] != "ok" || vals[2] != "no" || vals[1] != (jsonrows.RowError{Error: "row 1: result is not valid UTF-8"}) {
		t.Errorf("careless guest's rows = %#v; want ok, a row error for row 1, no", vals)
	}
}

func TestDeadlineStopsInfiniteLoop(t *testing.T) {
	s := startServer(t)
	s.createFunction("spin", s.upload("loop"), "spin", "(BIGINT) -> BIGINT")
	s.createFunction("add", s.upload("add"), "add", "(BIGINT, BIGINT) -> BIGINT")

	start := time.Now()
	out, errOut, code := s.cli("[-1]\n", "invoke", "--function", "spin")
	took := time.Since(start)
	if code == 0 || !strings.Contains(out, "deadline") || !strings.Contains(errOut, "failed") {
		t.Fatalf("looping call: exit %d, stdout %q, stderr %q; want a deadline error", code, out, errOut)
	}
	if took > 10*time.Second {
		t.Errorf("looping call took %s; the deadline is 2 s", took)
	}
	_, err := s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "spin", Batch: bigints([]int64{-7})})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(status.Convert(err).Message(), "deadline of 2s") {
		t.Fatalf("unary looping call: %v; want DEADLINE_EXCEEDED naming the deadline", err)
	}
	// The same function (fresh instance) and another one still answer.
	if out := s.mustCLI("[5]\n", "invoke", "--function", "spin"); out != "5\n" {
		t.Errorf("spin after timeout = %q, want 5", out)
	}
	if out := s.mustCLI("[5, 6]\n", "invoke", "--function", "add"); out != "11\n" {
		t.Errorf("add after timeout = %q, want 11", out)
	}
	recs := s.auditRecords()
	n := 0
	for _, r := range recs {
		if r.Type == "sandbox.violation" && r.Details["class"] == "timeout" && strings.Contains(r.Resource, "spin") && strings.HasPrefix(r.Pod, "spiffe://") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("audit log has %d timeout violations for spin, want 2", n)
	}
}

func TestTrapDiscardsInstance(t *testing.T) {
	s := startServer(t)
	s.createFunction("unlucky", s.upload("trap"), "unlucky", "(BIGINT) -> BIGINT")
	_, err := s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "unlucky", Batch: bigints([]int64{1, 13, 2})})
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("trapping batch: %v; want ABORTED naming the trap", err)
	}
	resp, err := s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "unlucky", Batch: bigints([]int64{1, 2})})
	if err != nil {
		t.Fatalf("batch after trap: %v", err)
	}
	if v := jsonrows.Values(resp); v[0] != int64(1) || v[1] != int64(2) {
		t.Errorf("batch after trap = %v", v)
	}
}

func TestInvokeStreamKeepsGoingAfterAFailedBatch(t *testing.T) {
	s := startServer(t)
	s.createFunction("unlucky", s.upload("trap"), "unlucky", "(BIGINT) -> BIGINT")
	st, err := s.invoker().InvokeStream(s.ctx())
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range [][]int64{{1}, {13}, {3}} {
		if err := st.Send(&udfhostv1.InvokeRequest{Function: "unlucky", Batch: bigints(in), Seq: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.Seq != uint64(i+1) {
			t.Errorf("response seq %d, want %d", resp.Seq, i+1)
		}
		if failed := resp.Error != nil; failed != (in[0] == 13) {
			t.Errorf("batch %v: error %v", in, resp.Error)
		}
	}
	st.CloseSend()
}

func TestFunctionErrors(t *testing.T) {
	s := startServer(t)
	add := s.upload("add")
	upper := s.upload("go-upper")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"type mismatch names both", []string{"--artifact", add, "--export", "add", "--signature", "(INT, BIGINT) -> BIGINT"},
			"expects export \"add\" to have wasm type (i32, i64) -> i64, but it has (i64, i64) -> i64"},
		{"arity", []string{"--artifact", add, "--export", "add", "--signature", "(BIGINT) -> BIGINT"}, "(i64) -> i64"},
		{"unknown export", []string{"--artifact", add, "--export", "sub", "--signature", "(BIGINT, BIGINT) -> BIGINT"}, "no export \"sub\""},
		{"unknown type", []string{"--artifact", add, "--export", "add", "--signature", "(BIGINT, DECIMAL) -> BIGINT"}, "unknown type \"DECIMAL\""},
		{"varchar needs batch ABI", []string{"--artifact", add, "--export", "add", "--signature", "(VARCHAR, BIGINT) -> BIGINT", "--abi", "direct"}, "direct ABI cannot pass"},
		{"batch ABI without SDK", []string{"--artifact", add, "--export", "add", "--signature", "(BIGINT, BIGINT) -> BIGINT", "--abi", "batch"}, "does not implement the batch ABI"},
		{"unknown artifact", []string{"--artifact", "art-0000000000000000", "--export", "add", "--signature", "(BIGINT, BIGINT) -> BIGINT"}, "not found"},
		{"unknown pool", []string{"--artifact", upper, "--export", "upper", "--signature", "(VARCHAR) -> VARCHAR", "--pool", "gpu"}, "compute pool \"gpu\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := s.cli("", append([]string{"function", "create", "--name", "f"}, tc.args...)...)
			if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want one line containing %q", code, errOut, tc.want)
			}
		})
	}
	if out := s.mustCLI("", "function", "list"); strings.TrimSpace(out) != "[]" {
		t.Errorf("failed creates left functions behind: %s", out)
	}
	_, errOut, code := s.cli("[1, 2]\n", "invoke", "--function", "nope")
	if code == 0 || !strings.Contains(errOut, "not found: function not found: \"nope\"") {
		t.Errorf("unknown function: exit %d, stderr %q", code, errOut)
	}
}

func TestSameArtifactSharesPodOthersDoNot(t *testing.T) {
	s := startServer(t)
	add := s.upload("add")
	s.createFunction("add1", add, "add", "(BIGINT, BIGINT) -> BIGINT")
	s.createFunction("add2", add, "add", "(BIGINT, BIGINT) -> BIGINT")
	s.createFunction("upper", s.upload("go-upper"), "upper", "(VARCHAR) -> VARCHAR")
	pids := map[string]string{}
	for _, r := range s.auditRecords() {
		if r.Type == "worker.started" {
			if prev, ok := pids[r.Pod]; ok {
				t.Errorf("pod %s started twice (pids %s, %s)", r.Pod, prev, r.Details["pid"])
			}
			pids[r.Pod] = r.Details["pid"]
		}
	}
	if len(pids) != 2 {
		t.Fatalf("want 2 pods (one per artifact), got %v", pids)
	}
	seen := map[string]bool{}
	for _, pid := range pids {
		if seen[pid] {
			t.Errorf("two pods share worker pid %s", pid)
		}
		seen[pid] = true
	}
}

func bigints(vals []int64) *udfhostv1.Batch {
	b := jsonrows.NewBuilder([]udfhostv1.SqlType{udfhostv1.SqlType_TYPE_BIGINT})
	for _, v := range vals {
		if err := b.AddLine([]byte(fmt.Sprintf("[%d]", v))); err != nil {
			panic(err)
		}
	}
	return b.Batch()
}

func TestDoctorReportsMeasuredLayers(t *testing.T) {
	s := startServer(t)
	out := s.mustCLI("", "doctor")
	var rep struct {
		Layers []struct {
			Name   string `json:"name"`
			Active bool   `json:"active"`
		} `json:"layers"`
		Probes []struct {
			Name   string `json:"name"`
			Denied bool   `json:"denied"`
		} `json:"probes"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Layers) == 0 || len(rep.Probes) == 0 {
		t.Fatalf("doctor output %q: %v", out, err)
	}
	for _, p := range rep.Probes {
		if p.Name == "connect to the host's loopback" && !p.Denied {
			t.Error("a jailed worker reached the host's loopback")
		}
	}
	if !strings.Contains(s.logs(), "msg=\"sandbox layers\"") {
		t.Errorf("serve did not log the sandbox layers at start:\n%s", s.logs())
	}
}
