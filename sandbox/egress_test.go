package sandbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/sandbox/internal/testmod"
	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// egressWAT imports udfhost_http and calls it from direct-ABI exports
// (BIGINT, BIGINT) -> BIGINT, one request a row. At 0 it holds the
// request record of GET /wat through "#0" (33 bytes).
//
//	ask      request(record, resp at 1024, cap 64): status<<32 | body length
//	badptr   the record outside memory: -2
//	badresp  the response buffer outside memory: -2
//	garbage  eight zero bytes as a record: -1
//	huge     a record of 4 GiB - 1: -1
//	errbuf   last_error into a buffer outside memory: -2
//	flood    a requests in a row; the last result
//	headers  ask, then response_headers(4096, 256): its length<<32 | count
//	readback ask, then response_read(a, 4096, 1): the body's byte at a
const egressWAT = `(module
  (import "udfhost_http" "request" (func $req (param i32 i32 i32 i32) (result i64)))
  (import "udfhost_http" "last_error" (func $err (param i32 i32) (result i32)))
  (import "udfhost_http" "response_read" (func $read (param i32 i32 i32) (result i32)))
  (import "udfhost_http" "response_headers" (func $hdrs (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\02\00\00\00#0\03\00\00\00GET\04\00\00\00/wat\00\00\00\00\00\00\00\00\00\00\00\00")
  (func (export "ask") (param i64 i64) (result i64)
    (call $req (i32.const 0) (i32.const 33) (i32.const 1024) (i32.const 64)))
  (func (export "badptr") (param i64 i64) (result i64)
    (call $req (i32.const 0xfff0) (i32.const 33) (i32.const 1024) (i32.const 64)))
  (func (export "badresp") (param i64 i64) (result i64)
    (call $req (i32.const 0) (i32.const 33) (i32.const 0xfff0) (i32.const 64)))
  (func (export "garbage") (param i64 i64) (result i64)
    (call $req (i32.const 2048) (i32.const 8) (i32.const 1024) (i32.const 64)))
  (func (export "huge") (param i64 i64) (result i64)
    (call $req (i32.const 0) (i32.const -1) (i32.const 1024) (i32.const 64)))
  (func (export "errbuf") (param i64 i64) (result i64)
    (drop (call $req (i32.const 0xfff0) (i32.const 33) (i32.const 0) (i32.const 0)))
    (i64.extend_i32_s (call $err (i32.const 0xfff0) (i32.const 100))))
  (func (export "flood") (param i64 i64) (result i64) (local $i i64) (local $r i64)
    (loop $l
      (local.set $r (call $req (i32.const 0) (i32.const 33) (i32.const 1024) (i32.const 64)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_s (local.get $i) (local.get 0))))
    (local.get $r))
  (func (export "headers") (param i64 i64) (result i64)
    (drop (call $req (i32.const 0) (i32.const 33) (i32.const 1024) (i32.const 0)))
    (i64.or (i64.shl (i64.extend_i32_s (call $hdrs (i32.const 4096) (i32.const 256))) (i64.const 32))
      (i64.load32_u (i32.const 4096))))
  (func (export "readback") (param i64 i64) (result i64)
    (drop (call $req (i32.const 0) (i32.const 33) (i32.const 1024) (i32.const 0)))
    (drop (call $read (i32.wrap_i64 (local.get 0)) (i32.const 4096) (i32.const 1)))
    (i64.load8_u (i32.const 4096))))`

// callHTTP calls a direct-ABI export of egressWAT on one row under ctx.
func callHTTP(ctx context.Context, w *Worker, export string, deadline time.Duration, a int64) (int64, error) {
	spec := &FuncSpec{Export: export, ABI: udf.ABIDirect, Args: bigint2, Result: udf.BigInt}
	out, err := w.Call(ctx, spec, deadline, testmod.BigintInput([]int64{a}, []int64{0}))
	if err != nil {
		return 0, err
	}
	col, _, err := abi.DecodeOutput(out, 1, udf.BigInt)
	if err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(col.Values)), nil
}

// recorder is an EgressHandler that keeps what it was asked.
type recorder struct {
	mu   sync.Mutex
	reqs []EgressRequest
	h    EgressHandler
}

func (r *recorder) handle(ctx context.Context, req EgressRequest) (EgressResponse, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	h := r.h
	r.mu.Unlock()
	return h(ctx, req)
}

func (r *recorder) set(h EgressHandler) {
	r.mu.Lock()
	r.h = h
	r.mu.Unlock()
}

func (r *recorder) seen() []EgressRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]EgressRequest(nil), r.reqs...)
}

func ok(body string) EgressHandler {
	return func(context.Context, EgressRequest) (EgressResponse, error) {
		return EgressResponse{Status: 200, Body: []byte(body)}, nil
	}
}

// TestEgressModuleValidatesAsAConnector: the test module's imports are the
// ones the artifact validator admits for a connector, with its types, and
// the worker links them (a mismatch would fail Start).
func TestEgressModuleValidatesAsAConnector(t *testing.T) {
	for _, wasm := range [][]byte{testmod.WAT(t, egressWAT), testmod.GoGuest(t, "enrich")} {
		if _, err := artifacts.Describe(context.Background(), wasm, artifacts.KindConnector); err != nil {
			t.Fatalf("connector: %v", err)
		}
		if _, err := artifacts.Describe(context.Background(), wasm, artifacts.KindUDF); !errors.Is(err, artifacts.ErrDisallowedImport) {
			t.Fatalf("as a udf: %v, want ErrDisallowedImport", err)
		}
	}
}

func TestEgressGuardsGuestMemory(t *testing.T) {
	w := startWorker(t, testConfig(t, testmod.WAT(t, egressWAT)))
	rec := &recorder{h: ok("hello")}
	ctx := WithEgress(context.Background(), rec.handle, "lookup")
	got, err := callHTTP(ctx, w, "ask", time.Second, 0)
	if err != nil || got != 200<<32|5 {
		t.Fatalf("ask: %#x, %v; want status 200, 5 bytes", got, err)
	}
	if got, err := callHTTP(ctx, w, "readback", time.Second, 1); err != nil || got != 'e' {
		t.Fatalf("response_read at 1: %q, %v", rune(got), err)
	}
	// Headers the record cannot carry are dropped: one is left, 34 bytes
	// (count, "Content-Type", "text/plain").
	rec.set(func(context.Context, EgressRequest) (EgressResponse, error) {
		return EgressResponse{Status: 204, Header: http.Header{"Content-Type": {"text/plain"}, "X-Bad": {"a\nb"}, "Bad Name": {"x"}}}, nil
	})
	if got, err := callHTTP(ctx, w, "headers", time.Second, 0); err != nil || got != 34<<32|1 {
		t.Fatalf("response_headers: %#x, %v; want 34 bytes, 1 header", got, err)
	}
	for _, tc := range []struct {
		export string
		want   int64
	}{{"badptr", -2}, {"badresp", -2}, {"garbage", -1}, {"huge", -1}, {"errbuf", -2}} {
		if got, err := callHTTP(ctx, w, tc.export, time.Second, 0); err != nil || got != tc.want {
			t.Errorf("%s: %d, %v; want %d", tc.export, got, err, tc.want)
		}
	}
	if n := len(rec.seen()); n != 3 {
		t.Errorf("the handler saw %d requests, want the 3 well-formed ones", n)
	}
}

func TestEgressWithoutHandlerIsRefused(t *testing.T) {
	w := startWorker(t, testConfig(t, testmod.WAT(t, egressWAT)))
	if got, err := callHTTP(context.Background(), w, "ask", time.Second, 0); err != nil || got != -3 {
		t.Fatalf("ask without a handler: %d, %v; want -3 (denied)", got, err)
	}
	// The Go example turns it into the row's error, with the message.
	g := startWorker(t, goConfig(t))
	rows, errs := lookupRows(t, context.Background(), g, "alice")
	if rows[0] != "" || len(errs) != 1 || !strings.Contains(errs[0].Message, "this function has no connections") {
		t.Fatalf("lookup without a handler: %q %v", rows, errs)
	}
}

func goConfig(t *testing.T) Config {
	cfg := testConfig(t, testmod.GoGuest(t, "enrich"))
	cfg.MemoryLimitPages = 4096
	return cfg
}

func varcharInput(cols ...[]string) []byte {
	b := &abi.Batch{Rows: uint32(len(cols[0]))}
	for _, vals := range cols {
		c := &abi.Column{Type: udf.Varchar, Offsets: binary.LittleEndian.AppendUint32(nil, 0)}
		for _, v := range vals {
			c.Values = append(c.Values, v...)
			c.Offsets = binary.LittleEndian.AppendUint32(c.Offsets, uint32(len(c.Values)))
		}
		b.Columns = append(b.Columns, c)
	}
	return abi.AppendInput(nil, b)
}

func varcharCall(t *testing.T, ctx context.Context, w *Worker, export string, cols ...[]string) ([]string, []*abi.RowError) {
	t.Helper()
	args := make([]udf.Type, len(cols))
	for i := range args {
		args[i] = udf.Varchar
	}
	spec := &FuncSpec{Export: export, ABI: udf.ABIBatch, Args: args, Result: udf.Varchar}
	out, err := w.Call(ctx, spec, 5*time.Second, varcharInput(cols...))
	if err != nil {
		t.Fatalf("%s: %v", export, err)
	}
	rows := len(cols[0])
	col, errs, err := abi.DecodeOutput(out, rows, udf.Varchar)
	if err != nil {
		t.Fatal(err)
	}
	res := make([]string, rows)
	for i := range res {
		lo, hi := binary.LittleEndian.Uint32(col.Offsets[4*i:]), binary.LittleEndian.Uint32(col.Offsets[4*i+4:])
		res[i] = string(col.Values[lo:hi])
	}
	return res, errs
}

func lookupRows(t *testing.T, ctx context.Context, w *Worker, keys ...string) ([]string, []*abi.RowError) {
	t.Helper()
	return varcharCall(t, ctx, w, "lookup", keys)
}

// TestEnrichReachesTheHandler runs the enrich example in a jailed worker:
// the handler sees the request the guest made (its first connection
// resolved to the binding's name, method, path, body) and its answer
// reaches the guest, a large one included.
func TestEnrichReachesTheHandler(t *testing.T) {
	w := startWorker(t, goConfig(t))
	big := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB: beyond the SDK's first read
	rec := &recorder{h: func(_ context.Context, req EgressRequest) (EgressResponse, error) {
		switch {
		case req.Method == "POST":
			return EgressResponse{Status: 202}, nil
		case req.Path == "/missing":
			return EgressResponse{Status: 404, Body: []byte("no such key")}, nil
		case req.Path == "/big":
			return EgressResponse{Status: 200, Body: []byte(big)}, nil
		case req.Path == "/down":
			return EgressResponse{}, fmt.Errorf("%w: connection %q: destination 127.0.0.1:18080 refused the connection", ErrEgressFailed, req.Conn)
		}
		return EgressResponse{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("value of " + req.Path[1:])}, nil
	}}
	ctx := WithEgress(context.Background(), rec.handle, "lookup_svc", "other")
	rows, errs := lookupRows(t, ctx, w, "alice", "missing", "big", "a/b", "down")
	if rows[0] != "value of alice" || rows[2] != big || rows[3] != "value of a%2Fb" {
		t.Errorf("rows %q", rows)
	}
	if len(errs) != 2 || errs[0].Row != 1 || !strings.Contains(errs[0].Message, "status 404") ||
		errs[1].Row != 4 || !strings.Contains(errs[1].Message, `connection "lookup_svc": destination 127.0.0.1:18080 refused`) {
		t.Errorf("row errors %+v, want row 1 naming status 404 and row 4 the failure", errs)
	}
	seen := rec.seen()
	if len(seen) != 5 {
		t.Fatalf("handler saw %d requests", len(seen))
	}
	for _, r := range seen {
		if r.Conn != "lookup_svc" || r.Method != "GET" || len(r.Body) != 0 || r.Addr != "" {
			t.Errorf("request %+v: want GET through lookup_svc (the binding's first)", r)
		}
	}
	if seen[0].Path != "/alice" || seen[3].Path != "/a%2Fb" {
		t.Errorf("paths %q, %q", seen[0].Path, seen[3].Path)
	}

	rows, errs = varcharCall(t, ctx, w, "publish", []string{"k1"}, []string{"the body"})
	if len(errs) != 0 || rows[0] != "202" {
		t.Errorf("publish: %q %+v", rows, errs)
	}
	last := rec.seen()[5]
	if last.Method != "POST" || last.Path != "/k1" || string(last.Body) != "the body" || last.Conn != "lookup_svc" {
		t.Errorf("publish sent %+v", last)
	}
}

// TestEgressCapRefusesAtOnce: past the worker's cap of requests being
// handled, a guest's request is refused as overloaded at once, and the
// worker serves on.
func TestEgressCapRefusesAtOnce(t *testing.T) {
	cfg := testConfig(t, testmod.WAT(t, egressWAT))
	cfg.MaxInstances, cfg.MaxEgress = 4, 1
	cfg.PreciseInterrupt = true
	w := startWorker(t, cfg)
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	h := func(ctx context.Context, _ EgressRequest) (EgressResponse, error) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return EgressResponse{Status: 200}, nil
	}
	ctx := WithEgress(context.Background(), h)
	first := make(chan int64, 1)
	go func() { r, _ := callHTTP(ctx, w, "ask", 10*time.Second, 0); first <- r }()
	<-entered
	for i := 0; i < 3; i++ {
		if got, err := callHTTP(ctx, w, "ask", 5*time.Second, 0); err != nil || got != -5 {
			t.Errorf("request past the cap: %d, %v; want -5 (overloaded)", got, err)
		}
	}
	close(release)
	if got := <-first; got != 200<<32 {
		t.Errorf("the request within the cap: %#x", got)
	}
	// A guest looping on requests is served one at a time, within the cap.
	if got, err := callHTTP(ctx, w, "flood", 10*time.Second, 300); err != nil || got != 200<<32 {
		t.Errorf("300 requests in a row: %#x, %v", got, err)
	}
	if got, err := call(w, "ask", time.Second, []int64{0}, []int64{0}); err != nil || got[0] != -3 {
		t.Errorf("later call: %v, %v", got, err)
	}
}

// TestSlowHandlerEndsWithTheCallsDeadline: a handler slower than the call
// ends with the call's deadline, its context cancelled; with wasm
// interruption the worker serves on.
func TestSlowHandlerEndsWithTheCallsDeadline(t *testing.T) {
	for _, precise := range []bool{true, false} {
		t.Run(fmt.Sprintf("precise=%v", precise), func(t *testing.T) {
			cfg := testConfig(t, testmod.WAT(t, egressWAT))
			cfg.PreciseInterrupt = precise
			w := startWorker(t, cfg)
			cancelled := make(chan error, 1)
			h := func(ctx context.Context, _ EgressRequest) (EgressResponse, error) {
				select {
				case <-ctx.Done():
					cancelled <- ctx.Err()
				case <-time.After(10 * time.Second):
					cancelled <- nil
				}
				return EgressResponse{Status: 200}, nil
			}
			start := time.Now()
			got, err := callHTTP(WithEgress(context.Background(), h), w, "ask", 300*time.Millisecond, 0)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("call with a slow handler: %#x, %v, want ErrTimeout", got, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the deadline of 300ms ended the call after %s", d)
			}
			select {
			case err := <-cancelled:
				if err == nil {
					t.Error("the handler's context did not end with the call")
				}
			case <-time.After(5 * time.Second):
				t.Error("the handler's context did not end with the call")
			}
			if precise {
				if got, err := callHTTP(WithEgress(context.Background(), ok("x")), w, "ask", time.Second, 0); err != nil || got != 200<<32|1 {
					t.Errorf("next call on the same worker: %#x, %v", got, err)
				}
			}
		})
	}
}

// Hostile workers: the test binary, as a worker, sends egress frames no
// honest worker would (rawEgressHook) and reports the host's replies.

var egressReplies = make(chan wire.Frame, 4096)

func collectEgressReply(fr wire.Frame) {
	fr.Payload = bytes.Clone(fr.Payload)
	select {
	case egressReplies <- fr:
	default:
	}
}

type rawReply struct {
	Status uint16 `json:"status"`
	Msg    string `json:"msg"`
}

// rawEgressHook: "egress-malformed" sends a frame with no call id, one
// with a garbage record and one announcing 2^30 headers;
// "egress-unknown-call" a good record for a call that does not exist;
// "egress-flood:N" N good records for its own call at once. It answers
// its call with the replies, as JSON.
func rawEgressHook(w *wire.Writer, id uint64, input []byte) bool {
	good := wire.AppendEgressRequest(nil, &wire.EgressRequest{Conn: "c", Method: "GET", Path: "/"})
	callID := func(c uint64) []byte { return binary.LittleEndian.AppendUint64(nil, c) }
	var frames [][]byte
	cmd := string(input)
	switch {
	case cmd == "egress-malformed":
		frames = [][]byte{{1, 2, 3}, append(callID(id), 0xff, 0xff, 0xff, 0xff),
			append(callID(id), wire.AppendEgressRequest(nil, &wire.EgressRequest{Conn: "c", Method: "GET", Path: "/"})[:21]...)}
		frames[2] = binary.LittleEndian.AppendUint32(frames[2], 1<<30) // the header count
	case cmd == "egress-oversize":
		// 4 MiB of egress request: over the 1 MiB body (and the fields'
		// bounds) the worker was given at load.
		w.Send(wire.KindEgress, wire.StatusOK, 1<<50, callID(id), make([]byte, 4<<20))
		return true
	case cmd == "egress-unknown-call":
		frames = [][]byte{append(callID(id+1<<40), good...)}
	case strings.HasPrefix(cmd, "egress-flood:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(cmd, "egress-flood:"))
		for range n {
			frames = append(frames, append(callID(id), good...))
		}
	default:
		return false
	}
	for i, p := range frames {
		w.Send(wire.KindEgress, wire.StatusOK, 1<<50+uint64(i), p) // ids the worker's own hub never uses
	}
	var replies []rawReply
	timeout := time.After(20 * time.Second)
	for len(replies) < len(frames) {
		select {
		case fr := <-egressReplies:
			replies = append(replies, rawReply{fr.Status, string(fr.Payload)})
		case <-timeout:
			replies = append(replies, rawReply{999, "timed out waiting for the host's replies"})
			frames = frames[:len(replies)]
		}
	}
	out, _ := json.Marshal(replies)
	w.Send(wire.KindResult, wire.StatusOK, id, out)
	return true
}

func rawEgress(t *testing.T, ctx context.Context, w *Worker, cmd string) []rawReply {
	t.Helper()
	add := &FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: bigint2, Result: udf.BigInt}
	out, err := w.call(ctx, add, 30*time.Second, []byte(cmd), wire.FlagTestHook, nil)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	var replies []rawReply
	if err := json.Unmarshal(out, &replies); err != nil {
		t.Fatalf("%s: %v in %q", cmd, err, out)
	}
	return replies
}

// TestHostRefusesHostileEgressFrames: malformed egress frames and frames
// for a call that is not running are refused with an error reply, none
// reaches a handler, and the worker and the host serve on.
func TestHostRefusesHostileEgressFrames(t *testing.T) {
	w := startWorker(t, testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT)))
	rec := &recorder{h: ok("")}
	ctx := WithEgress(context.Background(), rec.handle)
	replies := rawEgress(t, ctx, w, "egress-malformed")
	wants := []string{"egress frame of 3 bytes has no call id", "connection name of 4294967295 bytes exceeds the limit of 128", "1073741824 headers exceed the limit of 32"}
	if len(replies) != len(wants) {
		t.Fatalf("replies %+v", replies)
	}
	for i, r := range replies {
		if r.Status != wire.StatusEgressBadRequest || !strings.Contains(r.Msg, wants[i]) {
			t.Errorf("reply %d: %+v, want a bad-request refusal naming %q", i, r, wants[i])
		}
	}
	replies = rawEgress(t, ctx, w, "egress-unknown-call")
	if len(replies) != 1 || replies[0].Status != wire.StatusEgressDenied || !strings.Contains(replies[0].Msg, "which is not running") {
		t.Errorf("unknown call: %+v", replies)
	}
	if n := len(rec.seen()); n != 0 {
		t.Errorf("the handler saw %d hostile requests", n)
	}
	if got, err := call(w, "add", time.Second, []int64{2}, []int64{3}); err != nil || got[0] != 5 {
		t.Fatalf("worker after hostile egress frames: %v, %v", got, err)
	}
}

// TestOversizedEgressFrameKillsTheWorker: an egress frame over the limits
// the worker was given is a broken protocol, refused before the host
// allocates it: the worker is killed, its call fails naming the limit,
// and the pod's next worker serves.
func TestOversizedEgressFrameKillsTheWorker(t *testing.T) {
	cfg := testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT))
	w := startWorker(t, cfg)
	add := &FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: bigint2, Result: udf.BigInt}
	_, err := w.call(WithEgress(context.Background(), ok("")), add, 5*time.Second, []byte("egress-oversize"), wire.FlagTestHook, nil)
	var ce *CallError
	if !errors.As(err, &ce) || ce.Violation == nil || ce.Violation.Limit != "egress size" || !strings.Contains(err.Error(), "egress") {
		t.Fatalf("want an egress-size violation, got %v (%+v)", err, ce)
	}
	t.Log(ce.Violation.Detail)
	if got, err := call(startWorker(t, cfg), "add", time.Second, []int64{2}, []int64{3}); err != nil || got[0] != 5 {
		t.Fatalf("next worker: %v, %v", got, err)
	}
}

// TestEgressFloodHitsTheCap: a worker flooding egress requests for its
// call gets at most the cap handled at once, the rest refused as
// overloaded, and serves on.
func TestEgressFloodHitsTheCap(t *testing.T) {
	cfg := testConfig(t, testmod.WAT(t, testmod.AddSpinBoomWAT))
	cfg.MaxEgress = 3
	w := startWorker(t, cfg)
	var now, peak atomic.Int32
	h := func(ctx context.Context, _ EgressRequest) (EgressResponse, error) {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		now.Add(-1)
		return EgressResponse{Status: 200}, nil
	}
	const n = 500
	replies := rawEgress(t, WithEgress(context.Background(), h), w, "egress-flood:"+strconv.Itoa(n))
	counts := map[uint16]int{}
	for _, r := range replies {
		counts[r.Status]++
		if r.Status == wire.StatusEgressOverloaded && !strings.Contains(r.Msg, "egress overloaded") {
			t.Errorf("overload reply %q", r.Msg)
		}
	}
	if len(replies) != n || counts[wire.StatusOK]+counts[wire.StatusEgressOverloaded] != n || counts[wire.StatusEgressOverloaded] == 0 {
		t.Errorf("replies by status %v of %d", counts, len(replies))
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("%d handlers ran at once, the cap is 3", p)
	}
	if got, err := call(w, "add", time.Second, []int64{2}, []int64{3}); err != nil || got[0] != 5 {
		t.Fatalf("worker after the flood: %v, %v", got, err)
	}
}

// TestConnectorWorkerHasNoNetwork: a worker serving a module that imports
// udfhost_http still cannot create a socket or reach the host's loopback
// (the jail's canary probes, as TestDoctorProbesRunInsideTheJail runs
// them on the doctor's module; "create a socket" is trapped by seccomp).
func TestConnectorWorkerHasNoNetwork(t *testing.T) {
	if !canJail() {
		t.Skip("the jail needs root; make test runs as root")
	}
	for _, probe := range []string{"create a socket", "connect to the host's loopback", "see a network interface"} {
		t.Run(probe, func(t *testing.T) {
			w := startWorker(t, testConfig(t, testmod.WAT(t, egressWAT)))
			req, _ := json.Marshal(wire.ProbeRequest{HostPort: 1, Name: probe})
			out, err := w.call(context.Background(), &FuncSpec{Export: "ask", ABI: udf.ABIDirect}, 10*time.Second, req, wire.FlagProbe, nil)
			var ce *CallError
			if errors.As(err, &ce) && ce.Violation != nil {
				if ce.Violation.Layer != LayerSeccomp {
					t.Errorf("killed by %+v, want the seccomp filter", ce.Violation)
				}
				return // killed by the sandbox for trying
			}
			if err != nil {
				t.Fatal(err)
			}
			var p wire.Probe
			if err := json.Unmarshal(out, &p); err != nil || !p.Denied {
				t.Errorf("probe %q: %+v %v", probe, p, err)
			}
		})
	}
}

// BenchmarkEgressRequest is the cost of one guest request through the
// host and back (request record out, handler, reply in, the guest
// resumed) with a handler that answers at once: what the broker's own
// work and the destination's time add to.
func BenchmarkEgressRequest(b *testing.B) {
	cfg := testConfig(b, testmod.WAT(b, egressWAT))
	cfg.PreciseInterrupt = true
	w := startWorker(b, cfg)
	ctx := WithEgress(context.Background(), ok("hello"))
	const perCall = 100
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got, err := callHTTP(ctx, w, "flood", 10*time.Second, perCall); err != nil || got != 200<<32|5 {
			b.Fatalf("%#x, %v", got, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perCall), "ns/request")
}
