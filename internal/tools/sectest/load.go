package sectest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// rssWatch samples the server's resident memory until stopped.
type rssWatch struct {
	pid        int
	base, peak atomic.Int64
	done       chan struct{}
	wg         sync.WaitGroup
}

// watchRSS starts sampling the server's memory; it returns nil (and says
// why) when the server process is not known.
func (cr *caseRun) watchRSS() (*rssWatch, string) {
	pid := cr.r.cfg.ServerPID
	if pid == 0 {
		var err error
		if pid, err = listenerPID(cr.r.cfg.Addr); err != nil {
			return nil, "server memory not measured: " + err.Error()
		}
	}
	base, err := rssBytes(pid)
	if err != nil {
		return nil, "server memory not measured: " + err.Error()
	}
	w := &rssWatch{pid: pid, done: make(chan struct{})}
	w.base.Store(base)
	w.peak.Store(base)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
				if v, err := rssBytes(pid); err == nil && v > w.peak.Load() {
					w.peak.Store(v)
				}
			}
		}
	}()
	return w, ""
}

// stop ends sampling and checks growth against limitMB, adding a failure
// to o when it was exceeded.
func (w *rssWatch) stop(o *outcome, limitMB int64) {
	close(w.done)
	w.wg.Wait()
	grow := (w.peak.Load() - w.base.Load()) >> 20
	o.notes = append(o.notes, fmt.Sprintf("server RSS %d MiB -> peak %d MiB (+%d MiB, limit +%d MiB)",
		w.base.Load()>>20, w.peak.Load()>>20, grow, limitMB))
	if grow > limitMB {
		o.fails = append(o.fails, fmt.Sprintf("server memory grew by %d MiB (limit %d MiB): the load is not bounded", grow, limitMB))
	}
}

func param(c *Case, key string, def int) int {
	if v, err := strconv.Atoi(c.Params[key]); err == nil {
		return v
	}
	return def
}

// flood sends params.calls concurrent unary calls, each a batch of
// params.rows rows whose first row makes the guest spin params.spin
// iterations. The server must shed what it cannot queue with
// RESOURCE_EXHAUSTED and a retry hint, answer the rest correctly, and keep
// its memory bounded (params.max_rss_mb).
func flood(ctx context.Context, cr *caseRun) outcome {
	f, err := cr.setup(ctx, "")
	if err != nil {
		return refused(err)
	}
	calls, rows, spin := param(cr.c, "calls", 3000), param(cr.c, "rows", 1), param(cr.c, "spin", 100000)
	lines := make([]json.RawMessage, rows)
	for i := range lines {
		lines[i] = json.RawMessage("[0]")
	}
	lines[0] = json.RawMessage(fmt.Sprintf("[%d]", spin))
	b, err := batch(f, lines)
	if err != nil {
		return refused(err)
	}
	// Several connections, as several task managers would open.
	conns := make([]udfhostv1.InvokeServiceClient, 4)
	for i := range conns {
		conn, err := dial(cr.r.cfg.Addr, cr.r.cfg.Token, nil)
		if err != nil {
			return refused(err)
		}
		defer conn.Close()
		conns[i] = udfhostv1.NewInvokeServiceClient(conn)
	}
	w, why := cr.watchRSS()
	var ok, shed, hinted, wrong atomic.Int64
	var mu sync.Mutex
	other := map[string]int{}
	var maxHint time.Duration
	t0 := time.Now()
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			resp, err := conns[i%len(conns)].Invoke(cctx, &udfhostv1.InvokeRequest{Function: f.Name, Batch: b})
			switch {
			case err == nil:
				if resp.Rows == uint32(rows) && resp.Result != nil && len(resp.Result.Values) >= 8 &&
					int64(binary.LittleEndian.Uint64(resp.Result.Values)) == int64(spin) {
					ok.Add(1)
				} else {
					wrong.Add(1)
				}
			case status.Code(err) == codes.ResourceExhausted:
				shed.Add(1)
				for _, d := range status.Convert(err).Details() {
					if ri, isRI := d.(*errdetails.RetryInfo); isRI && ri.RetryDelay.AsDuration() > 0 {
						hinted.Add(1)
						mu.Lock()
						maxHint = max(maxHint, ri.RetryDelay.AsDuration())
						mu.Unlock()
					}
				}
			default:
				mu.Lock()
				other[status.Code(err).String()+": "+status.Convert(err).Message()]++
				mu.Unlock()
			}
		}()
	}
	close(gate)
	wg.Wait()
	o := outcome{took: time.Since(t0)}
	o.notes = append(o.notes, fmt.Sprintf("%d calls in %s: %d answered, %d shed (%d with a retry hint, longest %s)",
		calls, o.took.Round(time.Millisecond), ok.Load(), shed.Load(), hinted.Load(), maxHint))
	if w != nil {
		w.stop(&o, int64(param(cr.c, "max_rss_mb", 512)))
	} else {
		o.notes = append(o.notes, why)
	}
	if shed.Load() > 0 {
		o.stage, o.code, o.msg = "invoke", codes.ResourceExhausted.String(), fmt.Sprintf("%d of %d calls shed", shed.Load(), calls)
	} else {
		o.msg = fmt.Sprintf("all %d calls were queued: no back-pressure", calls)
	}
	if hinted.Load() < shed.Load() {
		o.fails = append(o.fails, fmt.Sprintf("%d shed calls carried no retry hint", shed.Load()-hinted.Load()))
	}
	if wrong.Load() > 0 {
		o.fails = append(o.fails, fmt.Sprintf("%d answers were wrong", wrong.Load()))
	}
	for msg, n := range other {
		o.fails = append(o.fails, fmt.Sprintf("%d calls failed otherwise: %s", n, msg))
	}
	return o
}

// streamSlowloris opens params.streams InvokeStream calls over plaintext
// HTTP/2, each announcing a params.declared_mb MiB message, sends 1 KiB of
// it and stalls. The server must end the stalled streams within
// params.stall_s seconds without its memory growing by what the frames
// announce (params.max_rss_mb).
func streamSlowloris(ctx context.Context, cr *caseRun) outcome {
	streams, declared := param(cr.c, "streams", 50), param(cr.c, "declared_mb", 16)
	stall := seconds(cr.c.Params["stall_s"], 12)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	w, why := cr.watchRSS()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ended := make(chan string, streams)
	var writers []*io.PipeWriter
	for range streams {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, err := http.NewRequestWithContext(sctx, http.MethodPost, "http://"+cr.r.cfg.Addr+"/udfhost.v1.InvokeService/InvokeStream", pr)
		if err != nil {
			return refused(err)
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("TE", "trailers")
		req.Header.Set("Authorization", "Bearer "+cr.r.cfg.Token)
		go func() {
			resp, err := client.Do(req)
			if err != nil {
				ended <- err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ended <- "grpc-status " + resp.Trailer.Get("Grpc-Status") + " " + resp.Trailer.Get("Grpc-Message")
		}()
		go func() {
			prefix := make([]byte, 5, 5+1024)
			binary.BigEndian.PutUint32(prefix[1:], uint32(declared)<<20)
			pw.Write(append(prefix, make([]byte, 1024)...))
		}()
	}
	t0 := time.Now()
	deadline := time.After(stall)
	n := 0
	var first string
wait:
	for n < streams {
		select {
		case msg := <-ended:
			if n == 0 {
				first = msg
			}
			n++
		case <-deadline:
			break wait
		}
	}
	o := outcome{took: time.Since(t0)}
	if w != nil {
		w.stop(&o, int64(param(cr.c, "max_rss_mb", 256)))
	} else {
		o.notes = append(o.notes, why)
	}
	for _, pw := range writers {
		pw.CloseWithError(io.ErrClosedPipe)
	}
	if n < streams {
		o.msg = fmt.Sprintf("%d of %d stalled streams were still open after %s", streams-n, streams, stall)
		return o
	}
	o.stage, o.code, o.msg = "stream", "ended", fmt.Sprintf("all %d stalled streams ended; the first with %s", streams, first)
	return o
}
