package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/udfhost/udfhost/internal/abi"
	"github.com/udfhost/udfhost/internal/abi/abipb"
	"github.com/udfhost/udfhost/internal/udf"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

var allTypes = []udfhostv1.SqlType{tInt, tBigint, tFloat, tDouble, tBool, tVarchar, tBytes}

func TestGenBatchValid(t *testing.T) {
	for _, typ := range allTypes {
		for _, nulls := range []float64{0, 0.3, 1} {
			for _, rows := range []int{0, 1, 9, 1024} {
				name := fmt.Sprintf("%v/nulls=%v/rows=%d", typ, nulls, rows)
				rng := rand.New(rand.NewPCG(1, 2))
				b := GenBatch([]udfhostv1.SqlType{typ}, rows, 5, nulls, rng)
				if err := abi.ValidateBatch(abipb.FromBatch(b), []udf.Type{udf.Type(typ)}); err != nil {
					t.Errorf("%s: invalid: %v", name, err)
					continue
				}
				c := b.Columns[0]
				if nulls == 0 && len(c.Validity) != 0 {
					t.Errorf("%s: validity set without NULLs", name)
				}
				valid := 0
				for i := range rows {
					if len(c.Validity) == 0 || c.Validity[i/8]&(1<<(i%8)) != 0 {
						valid++
					}
				}
				switch {
				case nulls == 1 && valid != 0:
					t.Errorf("%s: %d valid rows, want none", name, valid)
				case rows == 1024 && nulls == 0.3 && (valid < 600 || valid > 830):
					t.Errorf("%s: %d of 1024 rows valid, want about 717", name, valid)
				}
				if len(c.Validity) > 0 && rows%8 != 0 && c.Validity[len(c.Validity)-1]>>(rows%8) != 0 {
					t.Errorf("%s: validity bits set past the last row", name)
				}
				if typ == tVarchar || typ == tBytes {
					if want := 5 * valid; len(c.Values) != want {
						t.Errorf("%s: %d value bytes, want %d (5 per valid row)", name, len(c.Values), want)
					}
				}
				if typ == tVarchar && strings.Trim(string(c.Values), "abcdefghijklmnopqrstuvwxyz") != "" {
					t.Errorf("%s: VARCHAR values %q are not lower-case ASCII", name, c.Values)
				}
			}
		}
	}
	// All types in one batch, and the seed makes it reproducible.
	gen := func() *udfhostv1.Batch { return GenBatch(allTypes, 100, 16, 0.1, rand.New(rand.NewPCG(7, 7))) }
	b := gen()
	if err := abi.ValidateBatch(abipb.FromBatch(b), abipb.FromTypes(allTypes)); err != nil {
		t.Fatalf("all types: %v", err)
	}
	if !proto.Equal(b, gen()) {
		t.Error("same seed, different batches")
	}
}

// fakeServer answers with whatever answer returns; an error becomes a
// status (unary) or a BatchError (stream), as on the real server.
type fakeServer struct {
	udfhostv1.UnimplementedInvokeServiceServer
	answer func(req *udfhostv1.InvokeRequest) (*udfhostv1.InvokeResponse, error)
}

func (f *fakeServer) Invoke(_ context.Context, req *udfhostv1.InvokeRequest) (*udfhostv1.InvokeResponse, error) {
	return f.answer(req)
}

func (f *fakeServer) InvokeStream(st udfhostv1.InvokeService_InvokeStreamServer) error {
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := f.answer(req)
		if err != nil {
			s := status.Convert(err)
			resp = &udfhostv1.InvokeResponse{Seq: req.Seq, Error: &udfhostv1.BatchError{Code: int32(s.Code()), Message: s.Message()}}
		}
		if err := st.Send(resp); err != nil {
			return err
		}
	}
}

func startFake(t *testing.T, answer func(*udfhostv1.InvokeRequest) (*udfhostv1.InvokeResponse, error)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	udfhostv1.RegisterInvokeServiceServer(srv, &fakeServer{answer: answer})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func checkLatencies(t *testing.T, name string, res Result) {
	t.Helper()
	if !(res.P50Ms > 0 && res.P50Ms <= res.P99Ms && res.P99Ms <= res.MaxMs) {
		t.Errorf("%s: latencies not monotone: p50 %v p99 %v max %v", name, res.P50Ms, res.P99Ms, res.MaxMs)
	}
}

func TestRunEchoExactRows(t *testing.T) {
	ctx := context.Background()
	addr, stop, err := StartEcho(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	const rows = 20*256 + 100 // 21 batches, the last one short
	for _, tc := range []struct {
		unary   bool
		window  int
		streams int
		conns   int
		check   bool
		warmup  time.Duration
	}{
		{window: 1, streams: 1},
		{window: 4, streams: 1},
		{window: 1, streams: 3, conns: 1},
		{window: 4, streams: 3, check: true},
		{unary: true, window: 1, streams: 1},
		{unary: true, window: 4, streams: 2, warmup: 50 * time.Millisecond},
		{window: 4, streams: 2, warmup: 50 * time.Millisecond},
	} {
		name := fmt.Sprintf("unary=%v/window=%d/streams=%d/conns=%d/check=%v/warmup=%v", tc.unary, tc.window, tc.streams, tc.conns, tc.check, tc.warmup)
		cfg := Config{
			Addr: addr, Function: "f", Args: []udfhostv1.SqlType{tBigint, tVarchar}, Result: tBigint,
			Rows: rows, BatchRows: 256, Streams: tc.streams, Conns: tc.conns, Window: tc.window,
			Unary: tc.unary, Warmup: tc.warmup, Nulls: 0.1,
		}
		var checked atomic.Int64
		if tc.check {
			// The echo answers with the first column: check it is the
			// one sent.
			cfg.Check = func(req *udfhostv1.Batch, resp *udfhostv1.InvokeResponse) error {
				checked.Add(1)
				if !proto.Equal(req.Columns[0], resp.Result) {
					return errors.New("result is not the first column")
				}
				return nil
			}
		}
		res, err := Run(ctx, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Rows != rows || res.Batches != 21 || res.Errors != 0 || res.FirstError != "" {
			t.Errorf("%s: rows %d batches %d errors %d (%s), want %d, 21, 0", name, res.Rows, res.Batches, res.Errors, res.FirstError, rows)
		}
		if tc.check && checked.Load() != 21 {
			t.Errorf("%s: Check called %d times, want 21", name, checked.Load())
		}
		wantMode := "stream"
		if tc.unary {
			wantMode = "unary"
		}
		if res.Mode != wantMode || res.Target != "server" || res.Signature != "(BIGINT, VARCHAR) -> BIGINT" || res.Window != tc.window {
			t.Errorf("%s: result header %+v", name, res)
		}
		checkLatencies(t, name, res)
	}
}

func TestRunEchoDuration(t *testing.T) {
	for _, unary := range []bool{false, true} {
		res, err := Run(context.Background(), Config{
			Echo: true, Function: "f", Args: []udfhostv1.SqlType{tBigint, tBigint, tBigint}, Result: tBigint,
			Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, Streams: 2, Window: 2, Unary: unary,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Target != "echo" || res.Batches == 0 || res.Rows != 1024*res.Batches || res.Errors != 0 {
			t.Errorf("unary=%v: %+v", unary, res)
		}
		if res.Seconds < 0.2 || res.Seconds > 1 || res.RowsPerSec <= 0 {
			t.Errorf("unary=%v: measured %v s, %v rows/s; want about 0.2 s", unary, res.Seconds, res.RowsPerSec)
		}
		checkLatencies(t, fmt.Sprint("unary=", unary), res)
	}
}

// A function of no arguments gets an empty column of its result type.
func TestEchoNoColumns(t *testing.T) {
	var got *udfhostv1.InvokeResponse
	res, err := Run(context.Background(), Config{
		Echo: true, Function: "f", Result: tVarchar, Rows: 10, BatchRows: 10,
		Check: func(_ *udfhostv1.Batch, resp *udfhostv1.InvokeResponse) error { got = resp; return nil },
	})
	if err != nil || res.Rows != 10 || res.Errors != 0 {
		t.Fatalf("Run: %v %+v", err, res)
	}
	if got.Result.GetType() != tVarchar || got.Rows != 10 {
		t.Errorf("response %v, want 10 rows and an empty VARCHAR column", got)
	}
}

func TestRunCountsErrors(t *testing.T) {
	// Every third batch is shed, every fifth answered with a wrong row
	// count, every seventh fails outright; the rest succeed.
	overloaded := status.New(codes.ResourceExhausted, "queue full")
	overloaded, _ = overloaded.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Millisecond)})
	addr := startFake(t, func(req *udfhostv1.InvokeRequest) (*udfhostv1.InvokeResponse, error) {
		switch {
		case req.Seq%3 == 0:
			return nil, overloaded.Err()
		case req.Seq%5 == 0:
			return &udfhostv1.InvokeResponse{Seq: req.Seq, Rows: req.Batch.Rows - 1}, nil
		case req.Seq%7 == 0:
			return nil, status.Error(codes.Aborted, "guest trapped")
		}
		return &udfhostv1.InvokeResponse{Seq: req.Seq, Rows: req.Batch.Rows, Result: req.Batch.Columns[0]}, nil
	})
	// Seqs 1..105: 35 shed, 14 more with 5 | seq, 8 more with 7 | seq
	// (not 3 or 5), 48 fine.
	for _, tc := range []struct {
		unary  bool
		window int
	}{{false, 1}, {false, 4}, {true, 1}} {
		name := fmt.Sprintf("unary=%v/window=%d", tc.unary, tc.window)
		res, err := Run(context.Background(), Config{
			Addr: addr, Function: "f", Args: []udfhostv1.SqlType{tInt}, Result: tInt,
			Rows: 105 * 8, BatchRows: 8, Window: tc.window, Unary: tc.unary,
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Batches != 48 || res.Rows != 48*8 || res.Errors != 57 || res.ResourceExhausted != 35 {
			t.Errorf("%s: batches %d rows %d errors %d exhausted %d, want 48, 384, 57, 35", name, res.Batches, res.Rows, res.Errors, res.ResourceExhausted)
		}
		if res.FirstError != "ResourceExhausted: queue full" {
			t.Errorf("%s: first error %q", name, res.FirstError)
		}
	}
}

// goneServer answers 19 batches, then shuts itself down without answering
// the 20th.
type goneServer struct {
	udfhostv1.UnimplementedInvokeServiceServer
	srv *grpc.Server
}

func (g *goneServer) InvokeStream(st udfhostv1.InvokeService_InvokeStreamServer) error {
	for n := 1; ; n++ {
		req, err := st.Recv()
		if err != nil {
			return err
		}
		if n == 20 {
			go g.srv.Stop()
			<-st.Context().Done()
			return st.Context().Err()
		}
		if err := st.Send(&udfhostv1.InvokeResponse{Seq: req.Seq, Rows: req.Batch.Rows}); err != nil {
			return err
		}
	}
}

// A server that dies mid-run costs the outstanding batches (and the
// attempts to reopen the stream), not the run.
func TestRunServerGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	udfhostv1.RegisterInvokeServiceServer(srv, &goneServer{srv: srv})
	go srv.Serve(ln)
	defer srv.Stop()
	res, err := Run(context.Background(), Config{
		Addr: ln.Addr().String(), Function: "f", Args: []udfhostv1.SqlType{tInt}, Result: tInt,
		BatchRows: 4, Duration: 300 * time.Millisecond, Window: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Answers the server had queued when it closed may be lost too.
	if res.Batches < 1 || res.Batches > 19 || res.Errors < 4 || res.FirstError == "" {
		t.Errorf("batches %d errors %d (%q), want up to 19 and at least the 4 outstanding", res.Batches, res.Errors, res.FirstError)
	}
}

func TestRunNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = Run(ctx, Config{Addr: addr, Function: "f", Args: []udfhostv1.SqlType{tInt}, Result: tInt, Rows: 1})
	if err == nil {
		t.Fatal("Run against a closed port succeeded")
	}
}

func TestConfigErrors(t *testing.T) {
	base := Config{Echo: true, Function: "f", Result: tInt, Rows: 1}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Window = -1 }, "window"},
		{func(c *Config) { c.Nulls = 1.5 }, "nulls"},
		{func(c *Config) { c.Args = []udfhostv1.SqlType{0} }, "argument 1"},
		{func(c *Config) { c.Result = 0 }, "result"},
		{func(c *Config) { c.Function = "" }, "function"},
		{func(c *Config) { c.Echo = false }, "address"},
	} {
		cfg := base
		tc.mod(&cfg)
		if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one about %s", cfg, err, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	lat := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 5}, {0.99, 10}, {0.1, 1}, {0, 1}, {1, 10}} {
		if got := percentile(lat, tc.p); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(lat[:1], 0.99); got != 1 {
		t.Errorf("percentile of one = %v", got)
	}
}

// The pre-encoded request is byte for byte what the generated client sends.
func TestEncodedRequest(t *testing.T) {
	b := GenBatch([]udfhostv1.SqlType{tBigint, tVarchar}, 10, 3, 0.2, rand.New(rand.NewPCG(1, 1)))
	p := prepare("fn", "env", b)
	for _, seq := range []uint64{0, 1, 300, 1<<64 - 1} {
		req := newRequest(p, seq)
		data, err := wireCodec{}.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var got udfhostv1.InvokeRequest
		if err := proto.Unmarshal(data.Materialize(), &got); err != nil {
			t.Fatal(err)
		}
		want := &udfhostv1.InvokeRequest{Function: "fn", Env: "env", Batch: b, Seq: seq}
		if !proto.Equal(&got, want) || req.size() != len(data.Materialize()) {
			t.Errorf("seq %d: decoded %v", seq, &got)
		}
		if wantBytes, _ := proto.Marshal(want); !bytes.Equal(data.Materialize(), wantBytes) {
			t.Errorf("seq %d: bytes differ from the generated encoding", seq)
		}
	}
	// And the lean response parser reads what the server writes.
	enc, _ := proto.Marshal(&udfhostv1.InvokeResponse{Seq: 42, Rows: 10, Result: b.Columns[1],
		Errors: []*udfhostv1.RowError{{Row: 3, Message: "x"}}, Error: &udfhostv1.BatchError{Code: 8, Message: "full"}})
	var r response
	if err := r.parse(enc); err != nil || r.seq != 42 || r.rows != 10 || r.err.GetCode() != 8 || r.err.GetMessage() != "full" {
		t.Errorf("parse: %v %+v", err, r)
	}
	if err := r.parse(bytes.Repeat([]byte{0xff}, 3)); err == nil {
		t.Error("parse of garbage succeeded")
	}
}

// TestRatePacesTheLoad: with Rate, the batches sent follow the schedule, not
// the speed of the answers.
func TestRatePacesTheLoad(t *testing.T) {
	res, err := Run(context.Background(), Config{
		Echo: true, Function: "f", Args: []udfhostv1.SqlType{tBigint}, Result: tBigint,
		Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, Streams: 4, Rate: 200,
	})
	if err != nil {
		t.Fatal(err)
	}
	// 200 batches/s for 0.5 s is 100 batches; an unpaced echo does thousands.
	if res.Batches < 80 || res.Batches > 120 || res.Rate != 200 {
		t.Errorf("paced at 200/s for 0.5 s: %d batches (rate field %v), want about 100", res.Batches, res.Rate)
	}
}
