package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// The access matrix, cell by cell, through the real listeners of a real
// server: environment (public analytics, private payments) × network (the
// public one, payments' own payments-link, another private network) ×
// the visibility the resource was created with (payments has resources
// from before it was private) × operation × role. Each cell checks the
// status code and, for a denial, an access.denied record naming the
// principal, the network, the resource and a reason.
//
// A cell runs when the policy's Authorize decides it as the issue says.
// On a branch with the admin-only stub that is where the stub agrees with
// the issue (the others skip, saying so); with the policy file's
// Authorize, every cell runs.
//
// There are no update RPCs yet; "update" in the issue's matrix has no
// cell of its own.

// Where the issue leaves a choice, the test expects this; it must agree
// with policies.Authorize.
const (
	// A public environment is reachable from every network (the issue's
	// task manager on payments-link invoking acme.analytics.normalize).
	publicEnvFromPrivateNetwork = true
	// A resource created while its environment was public may be invoked
	// and released from the environment's private network, like any read
	// or update.
	legacyUsableFromOwnNetwork = true
)

// rolePermits are the actions of each role (docs/POLICY.md).
var rolePermits = map[policies.Role][]policies.Action{
	policies.RoleAdmin: {policies.ArtifactCreate, policies.ArtifactRead, policies.ArtifactDelete, policies.FunctionCreate,
		policies.FunctionRead, policies.FunctionDelete, policies.Invoke, policies.QuarantineRelease, policies.AuditRead},
	policies.RoleDeveloper: {policies.ArtifactCreate, policies.ArtifactRead, policies.ArtifactDelete, policies.FunctionCreate,
		policies.FunctionRead, policies.FunctionDelete, policies.Invoke},
	policies.RoleInvoker: {policies.Invoke, policies.FunctionRead},
	policies.RoleAuditor: {policies.ArtifactRead, policies.FunctionRead, policies.AuditRead},
}

// matrixOps are the operations, with the action of their RPC and whether
// they are about one existing resource.
var matrixOps = []struct {
	name     string
	act      policies.Action
	resource bool
}{
	{"upload_url", policies.ArtifactCreate, false},
	{"commit", policies.ArtifactCreate, false},
	{"list_artifacts", policies.ArtifactRead, false},
	{"get_artifact", policies.ArtifactRead, true},
	{"delete_artifact", policies.ArtifactDelete, true},
	{"release", policies.QuarantineRelease, true},
	{"create_function", policies.FunctionCreate, false},
	{"list_functions", policies.FunctionRead, false},
	{"get_function", policies.FunctionRead, true},
	{"delete_function", policies.FunctionDelete, true},
	{"invoke", policies.Invoke, true},
}

var matrixRoles = []string{"admin", "dev", "inv", "auditor", "nobody"}

type matrixCell struct {
	env, network, who, op string
	act                   policies.Action
	res                   policies.Visibility // "" for an operation about no one resource
}

func (c matrixCell) String() string {
	res := c.res
	if res == "" {
		res = "-"
	}
	return fmt.Sprintf("%s/%s/%s/%s/%s", c.env, c.network, res, c.op, c.who)
}

// ownNetwork is where an environment's resources are set up from.
func ownNetwork(env string) string {
	if env == "payments" {
		return netPayments
	}
	return netPublic
}

// roleIn is who's role in env, or "".
func roleIn(who, env string) policies.Role {
	if r, ok := tenantRoles[who][env]; ok {
		return r
	}
	return tenantRoles[who][policies.AllEnvironments]
}

// issueSays is the answer the issue gives for a cell: the matrix of
// networks first, then the role.
func issueSays(c matrixCell) codes.Code {
	private := c.env == "payments"
	switch {
	case private && c.network != netPayments:
		return codes.PermissionDenied // even listing
	case !private && c.network != netPublic && !publicEnvFromPrivateNetwork:
		return codes.PermissionDenied
	case private && c.res == policies.Public && (c.op == "invoke" || c.op == "release") && !legacyUsableFromOwnNetwork:
		return codes.PermissionDenied
	}
	role := roleIn(c.who, c.env)
	if role == "" {
		return codes.NotFound
	}
	if !slices.Contains(rolePermits[role], c.act) {
		return codes.PermissionDenied
	}
	return codes.OK
}

// stubSays is the answer of the admin-only Authorize on this branch.
func stubSays(c matrixCell) codes.Code {
	switch roleIn(c.who, c.env) {
	case policies.RoleAdmin:
		return codes.OK
	case "":
		return codes.NotFound
	}
	return codes.PermissionDenied
}

func matrixCells() []matrixCell {
	var cells []matrixCell
	for _, env := range []string{"analytics", "payments"} {
		resVis := []policies.Visibility{policies.Public}
		if env == "payments" {
			resVis = []policies.Visibility{policies.Public, policies.Private}
		}
		for _, network := range []string{netPublic, netPayments, netTreasury} {
			for _, op := range matrixOps {
				vis := []policies.Visibility{""}
				if op.resource {
					vis = resVis
				}
				for _, res := range vis {
					for _, who := range matrixRoles {
						cells = append(cells, matrixCell{env: env, network: network, who: who, op: op.name, act: op.act, res: res})
					}
				}
			}
		}
	}
	return cells
}

// resKey is a resource of env created with visibility res.
type resKey struct {
	env string
	res policies.Visibility
}

// matrixWorld is what the cells act on: per environment and visibility
// an artifact with a function, an artifact and a function that denied
// deletes may aim at, and for payments' resources from before it was
// private, the fresh ones the allowed deletes take (those cannot be
// made once it is private).
type matrixWorld struct {
	*tenants
	art     map[resKey]*udfhostv1.Artifact
	fn      map[resKey]string
	spareFn map[resKey]string // a function of art[key] nothing else uses
	// legacy* are payments' public resources for allowed deletes.
	legacyArts, legacyFns []string
	n                     int // for unique names
}

func (w *matrixWorld) name(prefix string) string {
	w.n++
	return fmt.Sprintf("%s%d", prefix, w.n)
}

// freshArtifact is an artifact of key with no function.
func (w *matrixWorld) freshArtifact(k resKey) string {
	w.t.Helper()
	if k == (resKey{"payments", policies.Public}) {
		id := w.legacyArts[0]
		w.legacyArts = w.legacyArts[1:]
		return id
	}
	return w.artifact(ownNetwork(k.env), k.env).Id
}

// freshFunction is a function of key nothing else uses.
func (w *matrixWorld) freshFunction(k resKey) string {
	w.t.Helper()
	if k == (resKey{"payments", policies.Public}) {
		name := w.legacyFns[0]
		w.legacyFns = w.legacyFns[1:]
		return name
	}
	name := w.name("fresh")
	w.mustFunction(ownNetwork(k.env), k.env, name, w.art[k].Id)
	return name
}

// runs reports whether the cell is decided as the issue says by the
// Authorize of this build.
func runs(c matrixCell, full bool) bool { return full || stubSays(c) == issueSays(c) }

func TestAccessMatrix(t *testing.T) {
	full := fullAuthorize()
	cells := matrixCells()
	legacyDeletes := map[string]int{}
	for _, c := range cells {
		if c.env == "payments" && c.res == policies.Public && runs(c, full) && issueSays(c) == codes.OK {
			legacyDeletes[c.op]++
		}
	}

	// Payments' resources from while it was public, then the restart that
	// makes it private.
	data := filepath.Join(t.TempDir(), "data")
	first := startTenants(t, data, policies.Public)
	w := &matrixWorld{tenants: first, art: map[resKey]*udfhostv1.Artifact{}, fn: map[resKey]string{}, spareFn: map[resKey]string{}}
	legacy := resKey{"payments", policies.Public}
	w.art[legacy] = w.artifact(netPublic, "payments")
	w.fn[legacy] = "legacy"
	w.mustFunction(netPublic, "payments", "legacy", w.art[legacy].Id)
	w.spareFn[legacy] = "legacy_spare"
	w.mustFunction(netPublic, "payments", "legacy_spare", w.art[legacy].Id)
	for range legacyDeletes["delete_artifact"] {
		w.legacyArts = append(w.legacyArts, w.artifact(netPublic, "payments").Id)
	}
	for range legacyDeletes["delete_function"] {
		name := w.name("legacy")
		w.mustFunction(netPublic, "payments", name, w.art[legacy].Id)
		w.legacyFns = append(w.legacyFns, name)
	}
	first.stop()
	w.tenants = startTenants(t, data, policies.Private)
	for _, k := range []resKey{{"analytics", policies.Public}, {"payments", policies.Private}} {
		w.art[k] = w.artifact(ownNetwork(k.env), k.env)
		w.fn[k] = w.name("fn")
		w.mustFunction(ownNetwork(k.env), k.env, w.fn[k], w.art[k].Id)
		w.spareFn[k] = w.name("spare")
		w.mustFunction(ownNetwork(k.env), k.env, w.spareFn[k], w.art[k].Id)
	}

	type denial struct{ who, network, resource string }
	var denials []denial
	for _, c := range cells {
		want := issueSays(c)
		t.Run(c.String(), func(t *testing.T) {
			if !runs(c, full) {
				t.Skipf("needs the policy file's Authorize: the issue says %s, the admin-only stub %s", want, stubSays(c))
			}
			resource, err := w.do(t, c, want)
			if got := status.Code(err); got != want {
				t.Fatalf("%s, want %s", err, want)
			}
			if want != codes.OK {
				denials = append(denials, denial{c.who, c.network, resource})
			}
		})
	}

	// Every denial is audited with its principal, network and reason.
	recorded := map[denial]bool{}
	for _, r := range w.records() {
		if r.Type == audit.TypeAccessDenied && r.Decision == audit.Deny && r.Reason != "" && r.Details["action"] != "" {
			recorded[denial{r.Actor, r.Network, r.Resource}] = true
		}
	}
	for _, d := range denials {
		if !recorded[d] {
			t.Errorf("no access.denied record for %s as %s on %s", d.resource, d.who, d.network)
		}
	}
}

// do runs the cell's call and returns what it was about (as a denial's
// record names it) and its error; want says whether it should succeed,
// for the set-up of deletes and what a success must show.
func (w *matrixWorld) do(t *testing.T, c matrixCell, want codes.Code) (string, error) {
	ctx := w.as(c.who)
	k := resKey{c.env, c.res}
	switch c.op {
	case "upload_url":
		_, err := w.uploadURL(c.network, c.who, c.env)
		return "env/" + c.env, err
	case "commit":
		// Issued on the cell's network, whoever may ask for it there.
		vis := policies.Public
		if c.env == "payments" {
			vis = policies.Private
		}
		up, err := w.s.store.CreateUpload(w.ctx, artifacts.UploadRequest{
			Env: c.env, Size: int64(len(w.wasm)), SHA256: hexSHA256(w.wasm), Actor: "admin",
			Network: c.network, Visibility: vis,
		})
		if err != nil {
			t.Fatal(err)
		}
		w.put(&udfhostv1.CreateUploadURLResponse{Url: up.URL, Method: up.Method, Headers: up.Headers}, w.wasm)
		_, err = w.arts(c.network).CommitUpload(ctx, &udfhostv1.CommitUploadRequest{UploadId: up.ID})
		return "upload/" + up.ID, err
	case "list_artifacts":
		resp, err := w.arts(c.network).ListArtifacts(ctx, &udfhostv1.ListArtifactsRequest{Env: c.env})
		if err == nil && !slices.ContainsFunc(resp.Artifacts, func(a *udfhostv1.Artifact) bool { return a.Id == w.art[resKey{c.env, visOf(c.env)}].Id }) {
			t.Errorf("the list misses %s", w.art[resKey{c.env, visOf(c.env)}].Id)
		}
		return "env/" + c.env, err
	case "get_artifact":
		_, err := w.arts(c.network).GetArtifact(ctx, &udfhostv1.GetArtifactRequest{Id: w.art[k].Id})
		return "artifact/" + w.art[k].Id, err
	case "delete_artifact":
		id := w.art[k].Id // in use: a denial must come before that is found
		if want == codes.OK {
			id = w.freshArtifact(k)
		}
		_, err := w.arts(c.network).DeleteArtifact(ctx, &udfhostv1.DeleteArtifactRequest{Id: id})
		if _, gerr := w.s.store.Get(w.ctx, id); (err == nil) != (status.Code(toStatus(gerr)) == codes.NotFound) {
			t.Errorf("after DeleteArtifact (%v) the artifact: %v", err, gerr)
		}
		return "artifact/" + id, err
	case "release":
		_, err := w.arts(c.network).ReleaseArtifact(ctx, &udfhostv1.ReleaseArtifactRequest{Id: w.art[k].Id})
		return "artifact/" + w.art[k].Id, err
	case "create_function":
		art := w.art[resKey{c.env, visOf(c.env)}]
		_, err := w.function(c.network, c.who, c.env, w.name("made"), art.Id)
		return "env/" + c.env, err
	case "list_functions":
		resp, err := w.fns(c.network).ListFunctions(ctx, &udfhostv1.ListFunctionsRequest{Env: c.env})
		fn := w.fn[resKey{c.env, visOf(c.env)}]
		if err == nil && !slices.ContainsFunc(resp.Functions, func(f *udfhostv1.FunctionInfo) bool { return f.Name == fn }) {
			t.Errorf("the list misses %s", fn)
		}
		return "env/" + c.env, err
	case "get_function":
		_, err := w.fns(c.network).GetFunction(ctx, &udfhostv1.GetFunctionRequest{Env: c.env, Name: w.fn[k]})
		return "function/" + c.env + "/" + w.fn[k], err
	case "delete_function":
		name := w.spareFn[k]
		if want == codes.OK {
			name = w.freshFunction(k)
		}
		_, err := w.fns(c.network).DeleteFunction(ctx, &udfhostv1.DeleteFunctionRequest{Env: c.env, Name: name})
		if _, gerr := w.s.fns.Get(c.env, name); (err == nil) != (gerr != nil) {
			t.Errorf("after DeleteFunction (%v) the function: %v", err, gerr)
		}
		return "function/" + c.env + "/" + name, err
	case "invoke":
		return "function/" + c.env + "/" + w.fn[k], w.invoke(c.network, c.who, c.env, w.fn[k])
	}
	t.Fatalf("no operation %s", c.op)
	return "", nil
}

// visOf is the visibility env's new resources get.
func visOf(env string) policies.Visibility {
	if env == "payments" {
		return policies.Private
	}
	return policies.Public
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
