package sectest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/udfhost/udfhost/internal/jsonrows"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// outcome is what an exercise observed.
type outcome struct {
	stage string        // where the server refused ("" if it did not)
	code  string        // gRPC code name, "HTTP 403", …
	msg   string        // the server's message, or what happened instead
	took  time.Duration // how long the server took to refuse, when measured
	fails []string      // expectations the exercise itself found unmet
	notes []string      // facts worth reporting either way
}

// refused turns an error from a step into an outcome.
func refused(err error) outcome {
	var f *failure
	if errors.As(err, &f) {
		return outcome{stage: f.stage, code: f.code, msg: f.msg}
	}
	return outcome{code: "error", msg: err.Error()}
}

func (o outcome) describe() string {
	var parts []string
	if o.stage != "" {
		parts = append(parts, "at "+o.stage)
	}
	if o.code != "" {
		parts = append(parts, o.code)
	}
	if o.took > 0 {
		parts = append(parts, "after "+o.took.Round(time.Millisecond).String())
	}
	s := strings.Join(parts, " ")
	if o.msg != "" {
		m := o.msg
		if len(m) > 300 {
			m = m[:300] + "…"
		}
		s += ": " + m
	}
	return s
}

// caseRun is one case being run: the facts it learns (for audit templates)
// and what to delete afterwards.
type caseRun struct {
	r     *runner
	c     *Case
	start time.Time
	seq   uint64 // last audit record before the case started
	mu    sync.Mutex
	vars  map[string]string
	undo  []func(context.Context)
	// deferCleanup leaves the deletions to the end of the run, for cases
	// that leave the server busy for a while.
	deferCleanup bool
}

func (cr *caseRun) set(k, v string) {
	cr.mu.Lock()
	cr.vars[k] = v
	cr.mu.Unlock()
}

func (cr *caseRun) get(k string) string {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.vars[k]
}

func (cr *caseRun) later(fn func(context.Context)) {
	cr.mu.Lock()
	cr.undo = append(cr.undo, fn)
	cr.mu.Unlock()
}

// cleanup deletes the case's functions and artifacts (functions first:
// an artifact in use cannot be deleted).
func (cr *caseRun) cleanup(ctx context.Context) {
	if cr.deferCleanup {
		for _, fn := range cr.undo {
			cr.r.later(fn)
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i := len(cr.undo) - 1; i >= 0; i-- {
		cr.undo[i](ctx)
	}
}

// name is a function name unique to the run, case and suffix.
func (cr *caseRun) name(suffix string) string {
	n := "st_" + cr.r.id + "_" + cr.c.Name
	if suffix != "" {
		n += "_" + suffix
	}
	return n
}

// module returns the case's artifact bytes (module of art).
func (cr *caseRun) module(variant string) ([]byte, error) {
	return cr.moduleOf(cr.c.Artifact, variant)
}

// moduleOf returns the bytes of art from the corpus; variant makes a .wasm
// module differ from the case's other uploads of it (another pod identity).
func (cr *caseRun) moduleOf(art, variant string) ([]byte, error) {
	return loadModule(cr.r.cfg.Corpus, art, cr.r.id+"/"+cr.c.Name+"/"+art+"/"+variant)
}

// loadModule reads art from the corpus or generates it; .wasm files get a
// custom section holding tag, so that every case and run has its own
// digest (pod identity, quarantine count) while the code is unchanged.
func loadModule(corpus, art, tag string) ([]byte, error) {
	if gen, ok := strings.CutPrefix(art, "gen:"); ok {
		fn := generated[gen]
		if fn == nil {
			return nil, fmt.Errorf("unknown generator %q", gen)
		}
		return fn(), nil
	}
	b, err := os.ReadFile(filepath.Join(corpus, art))
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(art, ".wasm") {
		b = append(b, customSection("udfhost-sectest", []byte(tag))...)
	}
	return b, nil
}

// upload uploads the case's module (variant as in moduleOf).
func (cr *caseRun) upload(ctx context.Context, variant string) (*udfhostv1.Artifact, error) {
	return cr.uploadOf(ctx, cr.c.Artifact, variant)
}

// uploadOf uploads art and records its upload, artifact, digest and pod.
func (cr *caseRun) uploadOf(ctx context.Context, artFile, variant string) (*udfhostv1.Artifact, error) {
	data, err := cr.moduleOf(artFile, variant)
	if err != nil {
		return nil, err
	}
	name := strings.ReplaceAll("st-"+cr.r.id+"-"+cr.c.Name, "_", "-")
	if variant != "" {
		name += "-" + variant
	}
	if len(name) > 63 {
		name = name[:63]
	}
	art, uploadID, err := cr.r.api.upload(ctx, name, data)
	if uploadID != "" {
		cr.set("upload", "upload/"+uploadID)
	}
	cr.set("digest", "sha256:"+sha256Hex(data))
	cr.set("pod", podID(sha256Hex(data)))
	if err != nil {
		return nil, err
	}
	cr.set("artifact", "artifact/"+art.Id)
	cr.later(func(ctx context.Context) {
		cr.r.api.art.DeleteArtifact(ctx, &udfhostv1.DeleteArtifactRequest{Id: art.Id})
	})
	return art, nil
}

// podID is the SPIFFE ID of the default org, environment and pool running
// the module with digest hexDigest (pods.Identity.SPIFFEID); the suite
// uses it to find audit records of pods whose function was refused.
func podID(hexDigest string) string {
	return "spiffe://udfhost.local/org/default/env/default/pool/default/artifact/sha256-" + hexDigest
}

// function binds the case's export of art, named with suffix.
func (cr *caseRun) function(ctx context.Context, art *udfhostv1.Artifact, suffix string) (*udfhostv1.FunctionInfo, time.Duration, error) {
	return cr.functionOf(ctx, art, suffix, cr.c.Export, cr.c.Signature, cr.c.ABI)
}

// functionOf binds export of art with signature sig, named with suffix.
func (cr *caseRun) functionOf(ctx context.Context, art *udfhostv1.Artifact, suffix, export, sig, abi string) (*udfhostv1.FunctionInfo, time.Duration, error) {
	name := cr.name(suffix)
	cr.set("function", "function/default/"+name)
	t0 := time.Now()
	f, err := cr.r.api.createFunction(ctx, name, art.Id, export, sig, abi)
	took := time.Since(t0)
	if err != nil {
		return nil, took, err
	}
	cr.set("pod", f.SpiffeId)
	cr.later(func(ctx context.Context) {
		cr.r.api.fn.DeleteFunction(ctx, &udfhostv1.DeleteFunctionRequest{Name: name, Env: "default"})
	})
	return f, took, nil
}

// setup uploads the case's module and creates its function.
func (cr *caseRun) setup(ctx context.Context, variant string) (*udfhostv1.FunctionInfo, error) {
	art, err := cr.upload(ctx, variant)
	if err != nil {
		return nil, err
	}
	f, _, err := cr.function(ctx, art, variant)
	return f, err
}

// batch builds a batch of f's argument types from JSON rows.
func batch(f *udfhostv1.FunctionInfo, rows []json.RawMessage) (*udfhostv1.Batch, error) {
	b := jsonrows.NewBuilder(f.ArgTypes)
	for _, row := range rows {
		if err := b.AddLine(row); err != nil {
			return nil, fmt.Errorf("manifest row %s: %w", row, err)
		}
	}
	return b.Batch(), nil
}

// invoke calls f on rows with a unary Invoke and returns one JSON value
// per row (jsonrows.Values).
func (cr *caseRun) invoke(ctx context.Context, f *udfhostv1.FunctionInfo, rows []json.RawMessage) ([]any, error) {
	if f == nil {
		return nil, errNoFunction
	}
	b, err := batch(f, rows)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := cr.r.api.inv.Invoke(ctx, &udfhostv1.InvokeRequest{Function: f.Name, Env: f.Env, Batch: b})
	if err != nil {
		return nil, grpcFailure("invoke", err)
	}
	return jsonrows.Values(resp), nil
}

// sameValues compares results with the manifest's JSON values.
func sameValues(got []any, want []json.RawMessage) (bool, string) {
	g, _ := json.Marshal(got)
	// Decoded with UseNumber and encoded again: the same formatting as
	// got, without losing 64-bit integers to float64.
	var w []any
	wb, _ := json.Marshal(want)
	dec := json.NewDecoder(bytes.NewReader(wb))
	dec.UseNumber()
	dec.Decode(&w)
	wb, _ = json.Marshal(w)
	return string(g) == string(wb), fmt.Sprintf("got %s, want %s", g, wb)
}
