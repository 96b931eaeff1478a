package server

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
	"github.com/udfhost/udfhost/sandbox"
)

// TestFunctionLimits: CreateFunction, GetFunction and ListFunctions
// return the limits the server enforces for the function's pool and edge.
func TestFunctionLimits(t *testing.T) {
	l := startLive(t, nil)
	art := l.upload(addK(t, 0))
	created := l.mustCreateAdd("add", art.Id)
	got, err := l.functions().GetFunction(l.ctx, &udfhostv1.GetFunctionRequest{Name: "add"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := l.functions().ListFunctions(l.ctx, &udfhostv1.ListFunctionsRequest{})
	if err != nil || len(list.Functions) != 1 {
		t.Fatalf("ListFunctions: %v, %v", list, err)
	}
	pool := policies.Default().Pools["default/default"]
	edge := policies.DefaultEdge()
	want := &udfhostv1.Limits{
		MaxBatchRows: uint32(pool.MaxBatchRows), MaxBatchBytes: uint64(pool.MaxBatchBytes),
		MaxMessageBytes: 80 << 20, BatchDeadlineMs: 2000, MemoryBytesPerInstance: 256 << 20,
		InstancesPerWorker: 2, QueuePerWorker: 62,
		FirstRequestTimeoutMs: uint32(edge.RequestTimeout.Milliseconds()), StreamIdleTimeoutMs: 60000, StreamWindow: 16,
	}
	for what, f := range map[string]*udfhostv1.FunctionInfo{"CreateFunction": created, "GetFunction": got, "ListFunctions": list.Functions[0]} {
		if f.Limits.String() != want.String() {
			t.Errorf("%s limits:\n got %v\nwant %v", what, f.Limits, want)
		}
	}
	if streamWindow != policies.StreamWindow {
		t.Errorf("streamWindow %d, policies.StreamWindow %d: one must be defined from the other", streamWindow, policies.StreamWindow)
	}
}

// TestUnknownEnvironment: an environment the policy does not have is
// reported as such, NOT_FOUND, by every RPC that takes one.
func TestUnknownEnvironment(t *testing.T) {
	l := startLive(t, nil)
	art := l.upload(addK(t, 0))
	l.mustCreateAdd("add", art.Id)
	calls := map[string]func() error{
		"GetFunction": func() error {
			_, err := l.functions().GetFunction(l.ctx, &udfhostv1.GetFunctionRequest{Name: "add", Env: "nope"})
			return err
		},
		"DeleteFunction": func() error {
			_, err := l.functions().DeleteFunction(l.ctx, &udfhostv1.DeleteFunctionRequest{Name: "add", Env: "nope"})
			return err
		},
		"ListFunctions": func() error {
			_, err := l.functions().ListFunctions(l.ctx, &udfhostv1.ListFunctionsRequest{Env: "nope"})
			return err
		},
		"CreateFunction": func() error {
			_, err := l.functions().CreateFunction(l.ctx, &udfhostv1.CreateFunctionRequest{Name: "add2", Env: "nope",
				ArtifactId: art.Id, Export: "add", Signature: "(BIGINT, BIGINT) -> BIGINT"})
			return err
		},
		"Invoke": func() error {
			_, err := l.invoker().Invoke(l.ctx, &udfhostv1.InvokeRequest{Function: "add", Env: "nope", Batch: &udfhostv1.Batch{}})
			return err
		},
		"ListArtifacts": func() error {
			_, err := l.artifacts().ListArtifacts(l.ctx, &udfhostv1.ListArtifactsRequest{Env: "nope"})
			return err
		},
		"CreateUploadURL": func() error {
			_, err := l.artifacts().CreateUploadURL(l.ctx, &udfhostv1.CreateUploadURLRequest{Env: "nope", Size: 8, Sha256: strings.Repeat("0", 64)})
			return err
		},
	}
	for rpc, call := range calls {
		st := status.Convert(call())
		if st.Code() != codes.NotFound || !strings.Contains(st.Message(), `environment "nope" not found`) || strings.Contains(st.Message(), "function not found") {
			t.Errorf("%s in env nope: %s %q; want NOT_FOUND naming the environment", rpc, st.Code(), st.Message())
		}
	}
	if v, err := l.add("add", 1, 2); err != nil || v != 3 {
		t.Errorf("add in the default env: %d, %v", v, err)
	}
}

// TestHostileNames: a name outside its grammar is refused first thing by
// every RPC that takes one: INVALID_ARGUMENT in one short line that does
// not echo it, a deny record and no allow record, no worker started, and
// the server goes on serving.
func TestHostileNames(t *testing.T) {
	l := startLive(t, nil)
	art := l.upload(addK(t, 0))
	l.mustCreateAdd("canary", art.Id)
	// CreateFunction goes for an artifact no function uses: a worker
	// started for it would be left with no function.
	unused := l.upload(addK(t, 5))
	hostile := map[string]string{
		"1 MiB":   strings.Repeat("a", 1<<20),
		"dotdot":  "../x",
		"slash":   "a/b",
		"NUL":     "a\x00b",
		"newline": "a\nb",
		"control": "a\x1b[31mb",
	}
	const sig = "(BIGINT, BIGINT) -> BIGINT"
	rpcs := map[string]func(bad string) error{
		"CreateFunction name": func(bad string) error {
			_, err := l.functions().CreateFunction(l.ctx, &udfhostv1.CreateFunctionRequest{Name: bad, ArtifactId: unused.Id, Export: "add", Signature: sig})
			return err
		},
		"CreateFunction env": func(bad string) error {
			_, err := l.functions().CreateFunction(l.ctx, &udfhostv1.CreateFunctionRequest{Name: "f", Env: bad, ArtifactId: unused.Id, Export: "add", Signature: sig})
			return err
		},
		"CreateFunction pool": func(bad string) error {
			_, err := l.functions().CreateFunction(l.ctx, &udfhostv1.CreateFunctionRequest{Name: "f", Pool: bad, ArtifactId: unused.Id, Export: "add", Signature: sig})
			return err
		},
		"CreateFunction artifact": func(bad string) error {
			_, err := l.functions().CreateFunction(l.ctx, &udfhostv1.CreateFunctionRequest{Name: "f", ArtifactId: bad, Export: "add", Signature: sig})
			return err
		},
		"CreateFunction export": func(bad string) error {
			_, err := l.functions().CreateFunction(l.ctx, &udfhostv1.CreateFunctionRequest{Name: "f", ArtifactId: unused.Id, Export: bad, Signature: sig})
			return err
		},
		"GetFunction name": func(bad string) error {
			_, err := l.functions().GetFunction(l.ctx, &udfhostv1.GetFunctionRequest{Name: bad})
			return err
		},
		"GetFunction env": func(bad string) error {
			_, err := l.functions().GetFunction(l.ctx, &udfhostv1.GetFunctionRequest{Name: "canary", Env: bad})
			return err
		},
		"DeleteFunction name": func(bad string) error {
			_, err := l.functions().DeleteFunction(l.ctx, &udfhostv1.DeleteFunctionRequest{Name: bad})
			return err
		},
		"ListFunctions env": func(bad string) error {
			_, err := l.functions().ListFunctions(l.ctx, &udfhostv1.ListFunctionsRequest{Env: bad})
			return err
		},
		"Invoke function": func(bad string) error {
			_, err := l.invoker().Invoke(l.ctx, &udfhostv1.InvokeRequest{Function: bad, Batch: &udfhostv1.Batch{}})
			return err
		},
		"Invoke env": func(bad string) error {
			_, err := l.invoker().Invoke(l.ctx, &udfhostv1.InvokeRequest{Function: "canary", Env: bad, Batch: &udfhostv1.Batch{}})
			return err
		},
		"CreateUploadURL env": func(bad string) error {
			_, err := l.artifacts().CreateUploadURL(l.ctx, &udfhostv1.CreateUploadURLRequest{Env: bad, Size: 8, Sha256: strings.Repeat("0", 64)})
			return err
		},
		"CreateUploadURL name": func(bad string) error {
			_, err := l.artifacts().CreateUploadURL(l.ctx, &udfhostv1.CreateUploadURLRequest{Name: bad, Size: 8, Sha256: strings.Repeat("0", 64)})
			return err
		},
		"CommitUpload id": func(bad string) error {
			_, err := l.artifacts().CommitUpload(l.ctx, &udfhostv1.CommitUploadRequest{UploadId: bad})
			return err
		},
		"GetArtifact id": func(bad string) error {
			_, err := l.artifacts().GetArtifact(l.ctx, &udfhostv1.GetArtifactRequest{Id: bad})
			return err
		},
		"DeleteArtifact id": func(bad string) error {
			_, err := l.artifacts().DeleteArtifact(l.ctx, &udfhostv1.DeleteArtifactRequest{Id: bad})
			return err
		},
		"ReleaseArtifact id": func(bad string) error {
			_, err := l.artifacts().ReleaseArtifact(l.ctx, &udfhostv1.ReleaseArtifactRequest{Id: bad})
			return err
		},
		"ListArtifacts env": func(bad string) error {
			_, err := l.artifacts().ListArtifacts(l.ctx, &udfhostv1.ListArtifactsRequest{Env: bad})
			return err
		},
	}
	livePods := l.live()
	for rpc, call := range rpcs {
		for what, bad := range hostile {
			if rpc == "CreateFunction export" && what != "1 MiB" && what != "NUL" && what != "newline" && what != "control" {
				continue // "../x" and "a/b" are valid wasm export names (and refused as missing exports)
			}
			t.Run(rpc+"/"+what, func(t *testing.T) {
				before := len(l.records())
				st := status.Convert(call(bad))
				if st.Code() != codes.InvalidArgument || len(st.Message()) > 300 || strings.ContainsAny(st.Message(), "\x00\n\x1b") {
					t.Errorf("%s %.300q; want INVALID_ARGUMENT in one short line", st.Code(), st.Message())
				}
				recs := l.records()[before:]
				denied := 0
				for _, r := range recs {
					if r.Decision == audit.Allow {
						t.Errorf("allow record for a refused name: %+v", r)
					}
					if r.Type == audit.TypePolicyDenied && r.Decision == audit.Deny && len(r.Reason) < 300 {
						denied++
					}
				}
				if denied != 1 {
					t.Errorf("%d short deny records, want 1: %+v", denied, recs)
				}
			})
		}
	}
	if now := l.live(); len(now) != len(livePods) {
		t.Errorf("live pods %v after hostile names, before %v", now, livePods)
	}
	if f, err := l.functions().ListFunctions(l.ctx, &udfhostv1.ListFunctionsRequest{}); err != nil || len(f.Functions) != 1 {
		t.Errorf("functions after hostile names: %v, %v", f, err)
	}
	if v, err := l.add("canary", 40, 2); err != nil || v != 42 {
		t.Errorf("canary: %d, %v", v, err)
	}
}

// TestWorkerStartFailureCodes: a module that cannot load under its pool's
// limits is the caller's fault (INVALID_ARGUMENT); a worker the host
// cannot start is the host's (UNAVAILABLE, retryable), on a new function
// and on the restart path of an invoke alike.
func TestWorkerStartFailureCodes(t *testing.T) {
	l := startLive(t, nil)
	oob := l.upload(wat(t, `(module (memory 1) (data (i32.const 65530) "0123456789abcdef")
		(func (export "add") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1))))`))
	_, err := l.createAdd("oob", oob.Id)
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "out of bounds") {
		t.Errorf("module that cannot instantiate: %s %q; want INVALID_ARGUMENT", st.Code(), st.Message())
	}

	good := l.upload(addK(t, 0))
	other := l.upload(addK(t, 1))
	l.mustCreateAdd("add", good.Id)
	// Now the host cannot start workers: the worker binary is gone.
	l.s.spares.Close()
	l.s.workerBase.Exe = "/nonexistent/udfhost"
	l.s.spares = sandbox.NewSpares(l.s.workerBase, 0)
	_, err = l.createAdd("add2", other.Id)
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "/nonexistent/udfhost") {
		t.Errorf("worker binary missing, new function: %s %q; want UNAVAILABLE naming it", st.Code(), st.Message())
	}
	for _, id := range l.s.pods.Live() {
		l.s.pods.Stop(l.ctx, id) // the restart path: the next invoke starts a worker
	}
	_, err = l.add("add", 1, 2)
	if st := status.Convert(err); st.Code() != codes.Unavailable {
		t.Errorf("worker binary missing, restart on invoke: %s %q; want UNAVAILABLE", st.Code(), st.Message())
	}
}

// TestPodCapEvictsLeastRecentlyUsed: with a cap of 2 pods, a third
// function's pod evicts the least recently used idle one; a call to the
// evicted one starts it again; every answer is right and the evictions
// are audited.
func TestPodCapEvictsLeastRecentlyUsed(t *testing.T) {
	p := policies.Default()
	p.Pools["default/default"].MaxPods = 2
	l := startLive(t, p)
	for i, name := range []string{"f0", "f1", "f2"} {
		l.mustCreateAdd(name, l.upload(addK(t, 100*i)).Id)
		if n := len(l.s.pods.Live()); n > 2 {
			t.Fatalf("%d live pods after %s, cap 2", n, name)
		}
	}
	evicted := func() []string {
		var out []string
		for _, r := range l.records() {
			if r.Type == audit.TypeWorkerStopped && r.Reason == string(pods.Evicted) {
				out = append(out, r.Pod)
			}
		}
		return out
	}
	for i, name := range []string{"f0", "f1", "f2", "f0", "f2", "f1"} {
		k := map[string]int64{"f0": 0, "f1": 100, "f2": 200}[name]
		if v, err := l.add(name, int64(i), 1); err != nil || v != int64(i)+1+k {
			t.Errorf("%s(%d, 1) = %d, %v; want %d", name, i, v, err, int64(i)+1+k)
		}
		if n := len(l.s.pods.Live()); n > 2 {
			t.Errorf("%d live pods, cap 2", n)
		}
	}
	// f2's create evicted f0; then f0 evicted f1, f1 f2, f2 f0, f0 f1,
	// and f2 is live when f2 is called (f0 and f2 live), then f1 evicts
	// f0.
	waitFor(t, func() bool { return len(evicted()) == 6 }, "6 evictions audited")
	var loads []string
	for _, r := range l.records() {
		if r.Type == audit.TypeWorkerStarted && r.Decision == audit.Allow {
			loads = append(loads, r.Details["load_ms"])
		}
	}
	t.Logf("pod starts (load_ms): %v", loads)
}

// TestCapErrorIsResourceExhausted: a refusal at a pod cap reaches the
// caller as RESOURCE_EXHAUSTED with the cap in words and a retry hint.
func TestCapErrorIsResourceExhausted(t *testing.T) {
	err := &pods.CapError{Scope: "the host", Live: 2, Max: 2, After: 1500 * time.Millisecond}
	st := status.Convert(toStatus(err))
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "its cap is 2") {
		t.Errorf("%s %q", st.Code(), st.Message())
	}
	var hint *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hint = ri
		}
	}
	if hint == nil || hint.RetryDelay.AsDuration() != 1500*time.Millisecond {
		t.Errorf("retry hint %v, want 1.5s", hint)
	}
}

// TestDeleteArtifactRacesCreateFunction: DeleteArtifact and CreateFunction
// on one digest, both queued behind its lock, in either order: the
// function is never bound to a deleted artifact.
func TestDeleteArtifactRacesCreateFunction(t *testing.T) {
	l := startLive(t, nil)
	wasm := addK(t, 7)
	// Two artifacts of the same bytes: deleting one keeps the object, so
	// a function bound to the deleted one could still start its pod.
	a1, a2 := l.upload(wasm), l.upload(wasm)
	if a1.Digest != a2.Digest {
		t.Fatal("same bytes, different digests")
	}
	type result struct{ create, del error }
	race := func(first string, artID, fn string) result {
		unlock := l.s.digestLocks.lock(a1.Digest)
		var res result
		var wg sync.WaitGroup
		run := map[string]func(){
			"delete": func() {
				_, res.del = l.artifacts().DeleteArtifact(l.ctx, &udfhostv1.DeleteArtifactRequest{Id: artID})
			},
			"create": func() { _, res.create = l.createAdd(fn, artID) },
		}
		second := map[string]string{"delete": "create", "create": "delete"}[first]
		for i, name := range []string{first, second} {
			wg.Add(1)
			go func() { defer wg.Done(); run[name]() }()
			waitFor(t, func() bool { return l.s.digestLocks.waiting(a1.Digest) == i+1 }, name+" queued")
		}
		unlock()
		wg.Wait()
		return res
	}

	res := race("delete", a1.Id, "f1")
	if res.del != nil {
		t.Errorf("delete first: %v", res.del)
	}
	if st := status.Convert(res.create); st.Code() != codes.NotFound || !strings.Contains(st.Message(), "was deleted") {
		t.Errorf("create after the delete: %s %q; want NOT_FOUND", st.Code(), st.Message())
	}
	res = race("create", a2.Id, "f2")
	if res.create != nil {
		t.Errorf("create first: %v", res.create)
	}
	if st := status.Convert(res.del); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "default/f2") {
		t.Errorf("delete after the create: %s %q; want FAILED_PRECONDITION naming f2", st.Code(), st.Message())
	}
	list, err := l.functions().ListFunctions(l.ctx, &udfhostv1.ListFunctionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range list.Functions {
		if _, err := l.artifacts().GetArtifact(l.ctx, &udfhostv1.GetArtifactRequest{Id: f.ArtifactId}); err != nil {
			t.Errorf("function %s is bound to %s: %v", f.Name, f.ArtifactId, err)
		}
	}
	if v, err := l.add("f2", 1, 1); err != nil || v != 9 {
		t.Errorf("f2(1, 1) = %d, %v", v, err)
	}
}

// TestPodCapRefusesWhenAllBusy: at the cap with every pod busy, a call
// that needs a new pod is refused with RESOURCE_EXHAUSTED naming the cap,
// with a retry hint, and audited; once the pod is idle the call gets in.
func TestPodCapRefusesWhenAllBusy(t *testing.T) {
	p := policies.Default()
	p.Pools["default/default"].MaxPods = 1
	l := startLive(t, p)
	spin := l.upload(wat(t, `(module (func (export "add") (param i64 i64) (result i64)
		(if (i64.lt_s (local.get 0) (i64.const 0)) (then (loop $l (br $l))))
		(local.get 0)))`))
	spinFn := l.mustCreateAdd("spin", spin.Id)
	l.mustCreateAdd("add", l.upload(addK(t, 0)).Id) // evicts spin's idle pod
	busy := make(chan error, 1)
	go func() { _, err := l.add("spin", -1, 0); busy <- err }() // runs to its deadline
	waitFor(t, func() bool {
		for _, id := range l.s.pods.Live() {
			if id.SPIFFEID() == spinFn.SpiffeId {
				w, err := l.s.pods.Get(l.ctx, id)
				return err == nil && w.InFlight() > 0
			}
		}
		return false
	}, "spin's batch in flight")
	_, err := l.add("add", 1, 2)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), `compute pool "default/default" has 1 live pods, its cap is 1, and every one is busy`) {
		t.Errorf("call past the cap: %s %q", st.Code(), st.Message())
	}
	if d, ok := retryAfter(errors.Join(&pods.CapError{After: time.Second})); !ok || d != time.Second {
		t.Errorf("retry hint %s, %v", d, ok)
	}
	hinted := false
	for _, d := range st.Details() {
		_, hinted = d.(*errdetails.RetryInfo)
	}
	if !hinted {
		t.Error("no retry hint")
	}
	if err := <-busy; status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("spin: %v, want DEADLINE_EXCEEDED", err)
	}
	if v, err := l.add("add", 1, 2); err != nil || v != 3 {
		t.Errorf("add once spin is done: %d, %v", v, err)
	}
	refused := 0
	for _, r := range l.records() {
		if r.Type == audit.TypeWorkerStarted && r.Decision == audit.Deny && strings.Contains(r.Reason, "its cap is 1") {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("%d refusals audited, want 1", refused)
	}
}
