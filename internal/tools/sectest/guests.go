package sectest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/udfhost/udfhost/internal/jsonrows"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// Guests that stay inside their limits, and batches nobody waits for.

// poolLimits are the limits of a function's pool the guest cases depend
// on: what GetFunction reports (FunctionInfo.limits), or the default
// policy's when the server does not report them.
type poolLimits struct {
	memoryPages int // linear memory per instance, in 64 KiB pages
	instances   int // batches one worker runs at once
	deadline    time.Duration
	from        string // where they came from, for the report
}

func limitsOf(f *udfhostv1.FunctionInfo) poolLimits {
	l := poolLimits{memoryPages: 4096, instances: 2, deadline: 2 * time.Second, from: "the default policy (GetFunction reports no limits)"}
	if fl := f.GetLimits(); fl != nil && fl.GetMemoryBytesPerInstance() > 0 {
		l.memoryPages = int(fl.GetMemoryBytesPerInstance() >> 16)
		l.instances = max(int(fl.GetInstancesPerWorker()), 1)
		if fl.GetBatchDeadlineMs() > 0 {
			l.deadline = time.Duration(fl.GetBatchDeadlineMs()) * time.Millisecond
		}
		l.from = "GetFunction"
	}
	return l
}

func (l poolLimits) String() string {
	return fmt.Sprintf("%d pages per instance, %d instances, batch deadline %s (from %s)", l.memoryPages, l.instances, l.deadline, l.from)
}

// concurrentValues creates the case's function and calls it params.rounds
// times (default 2) with as many concurrent calls as the pool has instances
// (params.calls overrides), each on the case's rows; every answer must
// equal want. Nothing may be charged to the function meanwhile: no
// sandbox.violation, no worker that died or was replaced under it.
func concurrentValues(ctx context.Context, cr *caseRun) outcome {
	f, err := cr.setup(ctx, "")
	if err != nil {
		return setupFailed(err)
	}
	lim := limitsOf(f)
	calls := param(cr.c, "calls", lim.instances)
	rounds := param(cr.c, "rounds", 2)
	want := cr.c.Want
	var o outcome
	o.notes = append(o.notes, "pool limits: "+lim.String())
	t0 := time.Now()
	failed := 0
	for round := range rounds {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := cr.invoke(ctx, f, cr.c.Rows)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					o.fails = append(o.fails, fmt.Sprintf("round %d, call %d of %d at once failed: %v (a guest inside its limits must be answered)", round+1, i+1, calls, err))
					return
				}
				if ok, why := sameValues(got, want); !ok {
					failed++
					o.fails = append(o.fails, fmt.Sprintf("round %d, call %d of %d answered wrongly: %s", round+1, i+1, calls, why))
				}
			}()
		}
		wg.Wait()
	}
	o.took = time.Since(t0)
	o.fails = append(o.fails, nothingCharged(cr, cr.get("function"), f.SpiffeId, 1)...)
	switch {
	case failed > 0:
		o.msg = fmt.Sprintf("%d of %d calls were not answered correctly", failed, rounds*calls)
	case len(o.fails) > 0:
		o.msg = fmt.Sprintf("all %d calls answered %s, but not without charges", rounds*calls, rawJSON(want))
	default:
		o.stage = "contained"
		o.msg = fmt.Sprintf("%d rounds of %d concurrent calls all answered %s", rounds, calls, rawJSON(want))
	}
	return o
}

// nothingCharged waits a moment, then lists what the audit log charged to
// a function (resource fn) or its pod since the case started: sandbox
// violations, workers that stopped with an error (killed: e.g. an OOM),
// batches re-run on a fresh worker (invocation.retried), and more than
// workers worker starts.
func nothingCharged(cr *caseRun, fn, pod string, workers int) []string {
	time.Sleep(time.Second) // an exit or violation is recorded asynchronously
	recs, err := cr.r.audit.since(cr.seq)
	if err != nil {
		return []string{err.Error()}
	}
	var viol, died, retried []Record
	started := 0
	for _, r := range recs {
		switch {
		case r.Type == "sandbox.violation" && (r.Resource == fn || r.Pod == pod):
			viol = append(viol, r)
		case r.Type == "invocation.retried" && (r.Resource == fn || r.Pod == pod):
			retried = append(retried, r)
		case r.Type == "worker.stopped" && r.Pod == pod && r.Decision != "allow":
			died = append(died, r)
		case r.Type == "worker.started" && r.Pod == pod:
			started++
		}
	}
	var out []string
	if len(viol) > 0 {
		out = append(out, fmt.Sprintf("%d sandbox violations charged to a guest inside its limits (first: record %d, class %s: %q)",
			len(viol), viol[0].Seq, viol[0].Details["class"], viol[0].Reason))
	}
	if len(died) > 0 {
		out = append(out, fmt.Sprintf("the pod's worker died %d times under a guest inside its limits (first: record %d, pid %s: %q)",
			len(died), died[0].Seq, died[0].Details["pid"], died[0].Reason))
	}
	if len(retried) > 0 {
		out = append(out, fmt.Sprintf("%d batches were re-run on a fresh worker (first: record %d: %q)", len(retried), retried[0].Seq, retried[0].Reason))
	}
	if started > workers {
		out = append(out, fmt.Sprintf("the pod's worker was started %d times (want %d): batches were re-run on a fresh worker", started, workers))
	}
	return out
}

// abandonedRunaway calls the case's function on rows (a batch that never
// ends) with a client deadline of params.client_ms (default 200) and gives
// up. The server must still stop the batch no later than its pool's
// deadline: a sandbox.violation (class timeout) for the function must
// appear (within_ms says how soon), no process of the server's may keep
// spinning, and then after.rows must be answered with after.want with no
// second violation charged to the function.
func abandonedRunaway(ctx context.Context, cr *caseRun) outcome {
	f, err := cr.setup(ctx, "")
	if err != nil {
		return setupFailed(err)
	}
	lim := limitsOf(f)
	fn := cr.get("function")
	b, err := batch(f, cr.c.Rows)
	if err != nil {
		return setupFailed(err)
	}
	var o outcome
	o.notes = append(o.notes, "pool limits: "+lim.String())
	clientWait := time.Duration(param(cr.c, "client_ms", 200)) * time.Millisecond
	cctx, cancel := context.WithTimeout(ctx, clientWait)
	t0 := time.Now()
	_, err = cr.r.api.inv.Invoke(cctx, &udfhostv1.InvokeRequest{Function: f.Name, Env: f.Env, Batch: b})
	cancel()
	if err == nil {
		o.msg = "the runaway batch was answered: the guest did not run away, so the case proves nothing"
		return o
	}
	o.notes = append(o.notes, fmt.Sprintf("the client gave up after %s (%s)", time.Since(t0).Round(time.Millisecond), grpcFailure("invoke", err).code))

	// Nobody waits for the batch now: the server alone must stop it.
	giveUp := t0.Add(lim.deadline + time.Duration(param(cr.c, "wait_ms", 10000))*time.Millisecond)
	var viol *Record
	for viol == nil && time.Now().Before(giveUp) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		recs, err := cr.r.audit.since(cr.seq)
		if err != nil {
			o.fails = append(o.fails, err.Error())
			return o
		}
		for _, r := range recs {
			if r.Type == "sandbox.violation" && r.Resource == fn {
				viol = &r
				break
			}
		}
	}
	if viol == nil {
		o.msg = fmt.Sprintf("no sandbox.violation for %s %s after the call started, though its pool's deadline is %s: a batch whose caller gave up was never stopped",
			fn, time.Since(t0).Round(time.Second), lim.deadline)
	} else {
		o.stage, o.code, o.took = "invoke", viol.Details["class"], time.Since(t0)
		o.msg = fmt.Sprintf("audit record %d: %s", viol.Seq, viol.Reason)
	}

	// The core the runaway held must be free again.
	if pid, err := cr.serverPID(); err != nil {
		o.notes = append(o.notes, "CPU not measured: "+err.Error())
	} else {
		window := time.Duration(param(cr.c, "cpu_window_ms", 2000)) * time.Millisecond
		busy, err := busiestDescendant(pid, window)
		switch {
		case err != nil:
			o.notes = append(o.notes, "CPU not measured: "+err.Error())
		case busy.runnable >= float64(param(cr.c, "max_runnable_pct", 90))/100:
			o.fails = append(o.fails, fmt.Sprintf("process %d (%s) of the server kept a thread running in %.0f%% of samples over %s (%.0f%% of a core) after the batch should have been stopped: the abandoned guest is still running",
				busy.pid, busy.comm, 100*busy.runnable, window, 100*busy.share))
		default:
			o.notes = append(o.notes, fmt.Sprintf("afterwards the busiest server process (%d %s) was running in %.0f%% of samples over %s (%.0f%% of a core)",
				busy.pid, busy.comm, 100*busy.runnable, window, 100*busy.share))
		}
	}

	// An innocent batch on the same function is answered and not charged.
	if a := cr.c.After; a != nil {
		got, err := cr.invoke(ctx, f, a.Rows)
		if err != nil {
			o.fails = append(o.fails, "a clean batch afterwards failed: "+err.Error())
		} else if ok, why := sameValues(got, a.Want); !ok {
			o.fails = append(o.fails, "a clean batch afterwards answered wrongly: "+why)
		} else {
			o.notes = append(o.notes, "a clean batch afterwards was answered correctly")
		}
	}
	time.Sleep(500 * time.Millisecond)
	recs, err := cr.r.audit.since(cr.seq)
	if err != nil {
		o.fails = append(o.fails, err.Error())
		return o
	}
	var seqs []string
	for _, r := range recs {
		if r.Type == "sandbox.violation" && r.Resource == fn {
			seqs = append(seqs, fmt.Sprintf("%d (%s)", r.Seq, r.Details["class"]))
		}
	}
	if len(seqs) > 1 {
		o.fails = append(o.fails, fmt.Sprintf("%d violations charged to the function for one runaway batch (records %s): a later batch was charged for it",
			len(seqs), strings.Join(seqs, ", ")))
	}
	return o
}

// serverPID is the server's process: the configured one, else the local
// listener of the gRPC address.
func (cr *caseRun) serverPID() (int, error) {
	if pid := cr.r.cfg.ServerPID; pid != 0 {
		return pid, nil
	}
	return listenerPID(cr.r.cfg.Addr)
}

// rowErrors is a values check: want lists, per row, the value, or
// {"error": "substring"} for a row that must be a per-row error whose
// message contains the substring.
func rowErrors(_ context.Context, cr *caseRun, vals []any) (bool, string) {
	want := cr.c.Want
	if len(vals) != len(want) {
		return false, fmt.Sprintf("%d rows answered, want %d", len(vals), len(want))
	}
	var bad, good []string
	for i, w := range want {
		var we struct {
			Error *string `json:"error"`
		}
		if json.Unmarshal(w, &we) == nil && we.Error != nil {
			re, isErr := vals[i].(jsonrows.RowError)
			switch {
			case !isErr:
				bad = append(bad, fmt.Sprintf("row %d was delivered as %s, want a per-row error containing %q", i, rawValue(vals[i]), *we.Error))
			case !strings.Contains(re.Error, *we.Error):
				bad = append(bad, fmt.Sprintf("row %d failed with %q, want a message containing %q", i, re.Error, *we.Error))
			default:
				good = append(good, fmt.Sprintf("row %d: error %q", i, re.Error))
			}
			continue
		}
		if ok, why := sameValues(vals[i:i+1], []json.RawMessage{w}); !ok {
			bad = append(bad, fmt.Sprintf("row %d: %s", i, why))
		}
	}
	if len(bad) > 0 {
		return false, strings.Join(bad, "; ")
	}
	sort.Strings(good)
	return true, fmt.Sprintf("other rows answered; %s", strings.Join(good, "; "))
}

// rawValue prints a result value with its bytes as they are (JSON would
// replace invalid UTF-8).
func rawValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// rawJSON prints manifest values as they are written.
func rawJSON(v []json.RawMessage) string {
	b, _ := json.Marshal(v)
	return short(string(b))
}
