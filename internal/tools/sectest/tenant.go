package sectest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// Attacks across tenants and on the server's shared state.

// crossTenant gives another tenant's function (params.victim, a BYTES
// echo) a secret, then has the case's module dump all the memory it can
// address (export params.dump) and ask the host to copy from past its
// memory's end (export params.peek). The secret must not appear and the
// peek must be refused.
func crossTenant(ctx context.Context, cr *caseRun) outcome {
	raw := make([]byte, 16)
	rand.Read(raw)
	secret := []byte("SECTEST-SECRET-" + hex.EncodeToString(raw))
	victimArt, err := cr.uploadOf(ctx, cr.c.Params["victim"], "victim")
	if err != nil {
		return setupFailed(err)
	}
	victim, _, err := cr.functionOf(ctx, victimArt, "victim", "echo", "(BYTES) -> BYTES", "")
	if err != nil {
		return setupFailed(err)
	}
	rows := make([]json.RawMessage, 64)
	for i := range rows {
		rows[i], _ = json.Marshal([]string{base64.StdEncoding.EncodeToString(secret)})
	}
	got, err := cr.invoke(ctx, victim, rows)
	if err != nil || len(got) != len(rows) || !bytes.Equal(asBytes(got[0]), secret) {
		return outcome{code: "error", msg: fmt.Sprintf("the victim did not hold the secret (%v, %s)", err, short(got))}
	}

	snoopArt, err := cr.upload(ctx, "")
	if err != nil {
		return setupFailed(err)
	}
	dump, _, err := cr.functionOf(ctx, snoopArt, "dump", cr.c.Params["dump"], "(BYTES) -> BYTES", "")
	if err != nil {
		return setupFailed(err)
	}
	vals, err := cr.invoke(ctx, dump, []json.RawMessage{json.RawMessage(`["eA=="]`)})
	var o outcome
	if err != nil {
		o.fails = append(o.fails, "the dump call failed, so the search could not run: "+err.Error())
	} else {
		mem := asBytes(vals[0])
		o.notes = append(o.notes, fmt.Sprintf("searched %d bytes of the snooper's memory", len(mem)))
		if bytes.Contains(mem, secret[15:27]) {
			o.fails = append(o.fails, "the other tenant's secret is in the snooper's memory")
		}
		// Everything but the input region (params.input_at, from memory
		// offset 56 on as dumped) must be the zeroes of fresh memory.
		in := param(cr.c, "input_at", 65536) - 56
		for i, b := range mem {
			if b != 0 && (i < in || i >= in+256) {
				o.fails = append(o.fails, fmt.Sprintf("the snooper's memory holds bytes it never wrote (offset %d)", i+56))
				break
			}
		}
	}

	peek, _, err := cr.functionOf(ctx, snoopArt, "peek", cr.c.Params["peek"], "(BYTES) -> BYTES", "")
	if err != nil {
		return setupFailed(err)
	}
	if vals, err := cr.invoke(ctx, peek, []json.RawMessage{json.RawMessage(`["eA=="]`)}); err != nil {
		r := refused(err)
		o.stage, o.code, o.msg = r.stage, r.code, r.msg
		if bytes.Contains([]byte(r.msg), secret[15:27]) {
			o.fails = append(o.fails, "the refusal carries the secret")
		}
	} else {
		o.msg = "the host copied memory past the guest's end: " + short(vals)
		for _, v := range vals {
			if bytes.Contains(asBytes(v), secret[15:27]) {
				o.fails = append(o.fails, "the peek returned the other tenant's secret")
			}
		}
	}
	return o
}

// asBytes decodes a BYTES result value (base64 in jsonrows.Values).
func asBytes(v any) []byte {
	s, _ := v.(string)
	b, _ := base64.StdEncoding.DecodeString(s)
	return b
}

func setupFailed(err error) outcome {
	o := refused(err)
	o.fails = append(o.fails, "setup failed: "+err.Error())
	return o
}

// quarantine makes the case's function fail params.violations times with
// a quarantinable violation (rows), then expects the next call (after.rows)
// refused until an admin releases the artifact, after which the same call
// must be answered (after.want).
func quarantine(ctx context.Context, cr *caseRun) outcome {
	art, err := cr.upload(ctx, "")
	if err != nil {
		return setupFailed(err)
	}
	f, _, err := cr.function(ctx, art, "")
	if err != nil {
		return setupFailed(err)
	}
	var o outcome
	n := param(cr.c, "violations", 3)
	for i := range n {
		if _, err := cr.invoke(ctx, f, cr.c.Rows); err == nil {
			return outcome{code: "error", msg: fmt.Sprintf("violation %d of %d: the hostile call succeeded", i+1, n)}
		} else if r := refused(err); r.code == "FailedPrecondition" {
			o.fails = append(o.fails, fmt.Sprintf("quarantined after %d violations, before the threshold of %d", i, n))
			break
		}
	}
	a := cr.c.After
	if _, err := cr.invoke(ctx, f, a.Rows); err != nil {
		r := refused(err)
		o.stage, o.code, o.msg = r.stage, r.code, r.msg
	} else {
		o.msg = fmt.Sprintf("still answering after %d violations", n)
		return o
	}
	if got, err := cr.r.api.art.GetArtifact(ctx, &udfhostv1.GetArtifactRequest{Id: art.Id}); err != nil || !got.Quarantined {
		o.fails = append(o.fails, fmt.Sprintf("GetArtifact does not show the quarantine (%v)", err))
	}
	if _, err := cr.r.api.art.ReleaseArtifact(ctx, &udfhostv1.ReleaseArtifactRequest{Id: art.Id}); err != nil {
		o.fails = append(o.fails, "ReleaseArtifact failed: "+err.Error())
		return o
	}
	got, err := cr.invoke(ctx, f, a.Rows)
	if err != nil {
		o.fails = append(o.fails, "after ReleaseArtifact the function still fails: "+err.Error())
	} else if ok, why := sameValues(got, a.Want); !ok {
		o.fails = append(o.fails, "after ReleaseArtifact: "+why)
	} else {
		o.notes = append(o.notes, "after ReleaseArtifact the function answered correctly")
	}
	return o
}

// startHang creates a function whose module never finishes instantiating
// (within params.timeout_s), and meanwhile has another tenant create a
// function of the canary's module, which must not wait for it (within
// params.bystander_ms).
func startHang(ctx context.Context, cr *caseRun) outcome {
	cr.deferCleanup = true // the server may be busy with the module after the case
	art, err := cr.upload(ctx, "")
	if err != nil {
		return setupFailed(err)
	}
	hctx, cancel := context.WithTimeout(ctx, seconds(cr.c.Params["timeout_s"], 8))
	defer cancel()
	type result struct {
		took time.Duration
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_, took, err := cr.function(hctx, art, "")
		done <- result{took, err}
	}()
	time.Sleep(300 * time.Millisecond)

	// A bystander: another tenant's ordinary function.
	var o outcome
	data, err := readCanary(cr.r.cfg.Canary, cr.r.id+"/"+cr.c.Name+"/bystander")
	if err != nil {
		return setupFailed(err)
	}
	bart, _, err := cr.r.api.upload(ctx, "st-"+cr.r.id+"-bystander", data)
	if err != nil {
		return setupFailed(err)
	}
	cr.later(func(ctx context.Context) {
		cr.r.api.art.DeleteArtifact(ctx, &udfhostv1.DeleteArtifactRequest{Id: bart.Id})
	})
	limit := time.Duration(param(cr.c, "bystander_ms", 3000)) * time.Millisecond
	bctx, bcancel := context.WithTimeout(ctx, limit)
	t0 := time.Now()
	bname := cr.name("bystander")
	_, berr := cr.r.api.createFunction(bctx, bname, bart.Id, "add", "(BIGINT, BIGINT) -> BIGINT", "")
	bcancel()
	// Registered either way: a create that timed out here may still
	// complete on the server.
	cr.later(func(ctx context.Context) {
		cr.r.api.fn.DeleteFunction(ctx, &udfhostv1.DeleteFunctionRequest{Name: bname, Env: "default"})
	})
	if berr != nil {
		o.fails = append(o.fails, fmt.Sprintf("another tenant's CreateFunction was blocked behind the hanging one (%s after %s)",
			refused(berr).code, time.Since(t0).Round(time.Millisecond)))
	} else {
		o.notes = append(o.notes, fmt.Sprintf("another tenant created a function meanwhile in %s", time.Since(t0).Round(time.Millisecond)))
	}

	r := <-done
	switch {
	case r.err == nil:
		o.msg = fmt.Sprintf("the function was created after %s", r.took.Round(time.Millisecond))
	case hctx.Err() != nil:
		o.msg = fmt.Sprintf("CreateFunction was still pending after %s", r.took.Round(time.Millisecond))
	default:
		ro := refused(r.err)
		o.stage, o.code, o.msg, o.took = ro.stage, ro.code, ro.msg, r.took
	}
	return o
}
