package sectest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/udfhost/udfhost/internal/jsonrows"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// Egress exercises. The case's artifact is a connector whose export
// (ask(conn, method, path, header VARCHAR) -> VARCHAR, test/hostile/go/
// go_egress) sends the request each row describes. Every forbidden
// request's URI holds "f/<case>", so the suite's HTTP server can tell
// whether any of them reached it; the after batch's rows use another.

// egressFunction uploads the case's connector into params.env (default
// the public one) and creates its function in the egress pool, bound to
// params.connections (comma-separated, in order; "" for none). It returns
// the API of the network that serves the environment.
func (cr *caseRun) egressFunction(ctx context.Context, variant string) (api, *udfhostv1.FunctionInfo, error) {
	eg := cr.r.eg
	if eg == nil {
		return api{}, nil, errNoEgress
	}
	env, a := egressPublicEnv, cr.r.api
	if cr.c.Params["env"] == egressSealedEnv {
		env, a = egressSealedEnv, eg.sealed
	}
	data, err := cr.module(variant)
	if err != nil {
		return a, nil, err
	}
	name := strings.ReplaceAll("st-"+cr.r.id+"-"+cr.c.Name+variant, "_", "-")
	if len(name) > 63 {
		name = name[:63]
	}
	// A Go connector takes a while to compile, and the host compiles only
	// a few at once: a busy host's refusal is retried, as a client would.
	var art *udfhostv1.Artifact
	var uploadID string
	for try := 0; ; try++ {
		art, uploadID, err = a.uploadIn(ctx, env, udfhostv1.ArtifactKind_ARTIFACT_KIND_CONNECTOR, name, data)
		var f *failure
		if try == 20 || !errors.As(err, &f) || f.stage != "commit" || f.code != "ResourceExhausted" {
			break
		}
		time.Sleep(time.Second)
	}
	if uploadID != "" {
		cr.set("upload", "upload/"+uploadID)
	}
	cr.set("digest", "sha256:"+sha256Hex(data))
	if err != nil {
		return a, nil, err
	}
	cr.set("artifact", "artifact/"+art.Id)
	cr.later(func(ctx context.Context) { a.art.DeleteArtifact(ctx, &udfhostv1.DeleteArtifactRequest{Id: art.Id}) })
	var conns []string
	if c := cr.c.Params["connections"]; c != "" {
		conns = strings.Split(c, ",")
	}
	fn := cr.name(variant)
	cr.set("function", "function/"+env+"/"+fn)
	f, err := a.createFunctionIn(ctx, &udfhostv1.CreateFunctionRequest{
		Name: fn, ArtifactId: art.Id, Export: "ask", Signature: "(VARCHAR, VARCHAR, VARCHAR, VARCHAR) -> VARCHAR",
		Env: env, Pool: egressPool, Connections: conns,
	}, "")
	if err != nil {
		return a, nil, err
	}
	cr.set("pod", f.SpiffeId)
	cr.later(func(ctx context.Context) {
		a.fn.DeleteFunction(ctx, &udfhostv1.DeleteFunctionRequest{Name: fn, Env: env})
	})
	return a, f, nil
}

// invokeOn calls f on rows through a (invoke for another network).
func (cr *caseRun) invokeOn(ctx context.Context, a api, f *udfhostv1.FunctionInfo, rows []json.RawMessage) ([]any, error) {
	b, err := batch(f, rows)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := a.inv.Invoke(ctx, &udfhostv1.InvokeRequest{Function: f.Name, Env: f.Env, Batch: b})
	if err != nil {
		return nil, grpcFailure("invoke", err)
	}
	return jsonrows.Values(resp), nil
}

// egressCase sends the case's rows through its connector: the call must
// be answered, each row as want says (row_errors: a refusal or failure is
// that row's error), the suite's server must have seen exactly
// params.server_sees (default 0) of the requests marked "f/<case>", no
// answer may hold the connection's secret, and the after batch must then
// be answered (the worker is unharmed).
func egressCase(ctx context.Context, cr *caseRun) outcome {
	a, f, err := cr.egressFunction(ctx, "")
	if err != nil {
		return setupFailed(err)
	}
	vals, err := cr.invokeOn(ctx, a, f, cr.c.Rows)
	if err != nil {
		o := refused(err)
		o.fails = append(o.fails, "the call failed: a refused request must be its row's error, the batch answered")
		return o
	}
	var o outcome
	ok, why := rowErrors(ctx, cr, vals)
	if !ok {
		o.msg = why
		return o
	}
	o.stage, o.msg = "contained", why
	note, fails := cr.egressSeen(param(cr.c, "server_sees", 0))
	o.notes = append(o.notes, note)
	o.fails = append(o.fails, fails...)
	o.fails = append(o.fails, cr.noSecret(vals)...)
	o.notes, o.fails = cr.egressAfter(ctx, a, f, o.notes, o.fails)
	return o
}

// egressSeen checks that the suite's server saw want requests marked
// f/<case> (polling briefly: a handler records a request when it ends),
// and says what it saw.
func (cr *caseRun) egressSeen(want int) (string, []string) {
	mark := "f/" + cr.c.Name
	var seen []seenRequest
	for range 20 {
		if seen = cr.r.eg.requests(mark); len(seen) >= want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	seen = cr.r.eg.requests(mark)
	var list []string
	for _, s := range seen {
		list = append(list, s.String())
	}
	note := fmt.Sprintf("the suite's server saw %d requests marked %s", len(seen), mark)
	if len(seen) > 0 {
		note += ": " + strings.Join(list, "; ")
	}
	switch {
	case len(seen) == want:
		return note, nil
	case want == 0:
		return note, []string{fmt.Sprintf("the suite's server saw %d forbidden requests: %s", len(seen), strings.Join(list, "; "))}
	}
	return note, []string{fmt.Sprintf("the suite's server saw %d requests, want %d: %s", len(seen), want, strings.Join(list, "; "))}
}

// noSecret checks that neither an answer nor the server's audit log or
// log holds the connection's secret.
func (cr *caseRun) noSecret(vals []any) []string {
	tok := strings.TrimPrefix(cr.r.eg.secret, "Bearer ")
	var out []string
	for i, v := range vals {
		s := rawValue(v)
		if re, ok := v.(jsonrows.RowError); ok {
			s = re.Error
		}
		if strings.Contains(s, tok) {
			out = append(out, fmt.Sprintf("row %d carries the connection's secret", i))
		}
	}
	files := []string{cr.r.audit.path}
	if cr.r.cfg.ServerLog != "" {
		files = append(files, cr.r.cfg.ServerLog)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			out = append(out, err.Error())
		} else if bytes.Contains(b, []byte(tok)) {
			out = append(out, "the connection's secret is in "+p)
		}
	}
	return out
}

// egressAfter runs the case's after batch: the same function must answer
// it (the worker or instance survived, or was replaced without harm).
func (cr *caseRun) egressAfter(ctx context.Context, a api, f *udfhostv1.FunctionInfo, notes, fails []string) ([]string, []string) {
	af := cr.c.After
	if af == nil {
		return notes, fails
	}
	got, err := cr.invokeOn(ctx, a, f, af.Rows)
	switch {
	case err != nil:
		fails = append(fails, "a clean request afterwards failed: "+err.Error())
	default:
		if ok, why := sameValues(got, af.Want); !ok {
			fails = append(fails, "a clean request afterwards: "+why)
		} else {
			notes = append(notes, "a clean request afterwards was answered "+rawJSON(af.Want))
		}
	}
	return notes, fails
}

// egressFlood makes params.calls (default 16) concurrent calls of one row
// each (the case's first row, whose path holds /hold/: the server answers
// after 3 s) on one pod, after as many concurrent clean calls (after's
// rows) to warm it up. Each instance has one request in flight, so the
// pod has up to params.calls at once: the broker must serve at most
// params.limit (default 8, its per-pod cap) and refuse the rest at once
// as overloaded rows, the server must never have more than the limit at
// once, and the after batch must be answered.
func egressFlood(ctx context.Context, cr *caseRun) outcome {
	a, f, err := cr.egressFunction(ctx, "")
	if err != nil {
		return setupFailed(err)
	}
	calls, limit := param(cr.c, "calls", 16), param(cr.c, "limit", 8)
	// A first round of clean requests starts the worker and its
	// instances, so that the flood's requests arrive together.
	var warm sync.WaitGroup
	for range calls {
		warm.Add(1)
		go func() {
			defer warm.Done()
			if cr.c.After != nil {
				cr.invokeOn(ctx, a, f, cr.c.After.Rows)
			}
		}()
	}
	warm.Wait()
	var mu sync.Mutex
	var answered, overloaded int
	var o outcome
	var slow time.Duration
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			vals, err := cr.invokeOn(ctx, a, f, cr.c.Rows[:1])
			took := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				o.fails = append(o.fails, fmt.Sprintf("call %d failed as a whole: %v", i, err))
			case len(vals) != 1:
				o.fails = append(o.fails, fmt.Sprintf("call %d answered %d rows", i, len(vals)))
			default:
				if re, ok := vals[0].(jsonrows.RowError); ok {
					if !strings.Contains(re.Error, "overloaded") {
						o.fails = append(o.fails, fmt.Sprintf("call %d: row error %q, want overloaded", i, re.Error))
					}
					overloaded++
					slow = max(slow, took)
				} else {
					answered++
				}
			}
		}()
	}
	wg.Wait()
	seen := cr.r.eg.requests("f/" + cr.c.Name)
	most := maxInFlight(seen)
	o.notes = append(o.notes, fmt.Sprintf("%d calls at once: %d answered, %d refused as overloaded (the slowest refusal took %s, the server answers after 3 s); the server saw %d, at most %d at once",
		calls, answered, overloaded, slow.Round(time.Millisecond), len(seen), most))
	switch {
	case overloaded == 0:
		o.msg = fmt.Sprintf("no request was refused: %d concurrent requests of one pod all reached the server", answered)
		return o
	case most > limit:
		o.fails = append(o.fails, fmt.Sprintf("the server had %d of the pod's requests at once, over the cap of %d", most, limit))
	case len(seen) != answered:
		o.fails = append(o.fails, fmt.Sprintf("the server saw %d requests but %d were answered", len(seen), answered))
	}
	o.stage, o.msg = "contained", fmt.Sprintf("%d of %d concurrent requests refused as overloaded", overloaded, calls)
	o.notes, o.fails = cr.egressAfter(ctx, a, f, o.notes, o.fails)
	return o
}

// egressQuarantine calls the function on the case's rows (one forbidden
// request per call) until a call is refused; the refusals must count
// toward quarantine, so the call after params.violations (the egress
// pool's quarantine_after) refusals must be refused as quarantined, and
// not before. The artifact is then released and the after batch
// answered.
func egressQuarantine(ctx context.Context, cr *caseRun) outcome {
	a, f, err := cr.egressFunction(ctx, "")
	if err != nil {
		return setupFailed(err)
	}
	n := param(cr.c, "violations", 5)
	var o outcome
	for i := range n + 2 {
		vals, err := cr.invokeOn(ctx, a, f, cr.c.Rows)
		if err != nil {
			r := refused(err)
			o.stage, o.code, o.msg = r.stage, r.code, r.msg
			if i < n {
				o.fails = append(o.fails, fmt.Sprintf("refused after %d denied requests, before the threshold of %d", i, n))
			}
			o.notes = append(o.notes, fmt.Sprintf("call %d refused after %d denied requests", i+1, i))
			break
		}
		if len(vals) != 1 {
			o.fails = append(o.fails, fmt.Sprintf("call %d answered %d rows", i+1, len(vals)))
			return o
		}
		if _, ok := vals[0].(jsonrows.RowError); !ok {
			o.msg = fmt.Sprintf("call %d: the forbidden request was answered %s", i+1, rawValue(vals[0]))
			return o
		}
	}
	if o.stage == "" {
		o.msg = fmt.Sprintf("still answering after %d denied requests", n+2)
		return o
	}
	note, fails := cr.egressSeen(0)
	o.notes = append(o.notes, note)
	o.fails = append(o.fails, fails...)
	id := strings.TrimPrefix(cr.get("artifact"), "artifact/")
	if got, err := a.art.GetArtifact(ctx, &udfhostv1.GetArtifactRequest{Id: id}); err != nil || !got.Quarantined {
		o.fails = append(o.fails, fmt.Sprintf("GetArtifact does not show the quarantine (%v)", err))
	}
	if _, err := a.art.ReleaseArtifact(ctx, &udfhostv1.ReleaseArtifactRequest{Id: id}); err != nil {
		o.fails = append(o.fails, "ReleaseArtifact failed: "+err.Error())
		return o
	}
	o.notes, o.fails = cr.egressAfter(ctx, a, f, o.notes, o.fails)
	return o
}
