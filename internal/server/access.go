package server

import (
	"context"
	"errors"

	"google.golang.org/grpc"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// anyPrincipal is the action of an RPC every authenticated principal may
// call, whatever its roles: it reads or changes nothing of an environment.
const anyPrincipal policies.Action = ""

// rpcActions is what each RPC does, as the policy decides it: the one
// table of it. The interceptors refuse an RPC that is not in it, and each
// handler asks Policy.Authorize for its RPC's action (authorize), with
// the environment of the request — or, for an existing resource, its
// environment and the visibility it was created with — after the caller
// is authenticated and before anything is read for it or changed.
var rpcActions = map[string]policies.Action{
	udfhostv1.ArtifactService_CreateUploadURL_FullMethodName: policies.ArtifactCreate,
	udfhostv1.ArtifactService_CommitUpload_FullMethodName:    policies.ArtifactCreate,
	udfhostv1.ArtifactService_GetArtifact_FullMethodName:     policies.ArtifactRead,
	udfhostv1.ArtifactService_ListArtifacts_FullMethodName:   policies.ArtifactRead,
	udfhostv1.ArtifactService_DeleteArtifact_FullMethodName:  policies.ArtifactDelete,
	udfhostv1.ArtifactService_ReleaseArtifact_FullMethodName: policies.QuarantineRelease,
	udfhostv1.FunctionService_CreateFunction_FullMethodName:  policies.FunctionCreate,
	udfhostv1.FunctionService_GetFunction_FullMethodName:     policies.FunctionRead,
	udfhostv1.FunctionService_ListFunctions_FullMethodName:   policies.FunctionRead,
	udfhostv1.FunctionService_DeleteFunction_FullMethodName:  policies.FunctionDelete,
	// Per batch: every request of a stream names its function.
	udfhostv1.InvokeService_Invoke_FullMethodName:       policies.Invoke,
	udfhostv1.InvokeService_InvokeStream_FullMethodName: policies.Invoke,
	udfhostv1.IdentityService_WhoAmI_FullMethodName:     anyPrincipal,
	udfhostv1.AuditService_ReadAudit_FullMethodName:     policies.AuditRead,
	udfhostv1.AuditService_Tail_FullMethodName:          policies.AuditRead,
	udfhostv1.AuditService_GetCheckpoint_FullMethodName: policies.AuditRead,
	udfhostv1.AuditService_Prove_FullMethodName:         policies.AuditRead,
}

// resourceRef names what a call is about: in the record of a denial, and
// to answer a caller that may not see its environment exactly as if it
// did not exist.
type resourceRef struct {
	kind    string // "env", "function", "artifact" or "upload"
	env, id string
}

func envRef(env string) resourceRef { return resourceRef{kind: "env", env: env} }
func functionRef(env, name string) resourceRef {
	return resourceRef{kind: "function", env: env, id: name}
}
func artifactRef(env, id string) resourceRef { return resourceRef{kind: "artifact", env: env, id: id} }
func uploadRef(env, uploadID string) resourceRef {
	return resourceRef{kind: "upload", env: env, id: uploadID}
}

func (r resourceRef) String() string {
	switch r.kind {
	case "env":
		return "env/" + r.env
	case "function":
		return "function/" + r.env + "/" + r.id
	}
	return r.kind + "/" + r.id
}

// missing is what the call is answered when the resource does not exist:
// an artifact or upload id no one has, or else an environment the policy
// does not have.
func (r resourceRef) missing() error {
	switch r.kind {
	case "artifact":
		return artifacts.MissingArtifact(r.id)
	case "upload":
		return artifacts.MissingUpload(r.id)
	}
	return missingEnv(r.env)
}

// missingEnv is exactly what the policy answers for an environment it
// does not have.
func missingEnv(env string) error {
	_, err := (&policies.Policy{}).Env(env)
	return err
}

// visibilityOf is the visibility of a resource recorded with v: public
// for records written before resources had one.
func visibilityOf(v policies.Visibility) policies.Visibility {
	if v == "" {
		return policies.Public
	}
	return v
}

// authorize decides the call in ctx, whose RPC's action is rpcActions',
// on ref; res is the visibility ref was created with ("" when the call
// creates or lists). See authorizeAs.
func (s *Server) authorize(ctx context.Context, ref resourceRef, res policies.Visibility) error {
	return s.authorizeAs(ctx, callerOf(ctx).action, ref, res)
}

// authorizeAs decides whether the caller in ctx may do act to ref
// (Policy.Authorize: the access matrix of its network, then its role in
// ref's environment). A denial is audited with its reason, principal and
// network (access.denied); a caller that may not see the environment at
// all gets a hiddenError, which the edge answers as ref.missing().
func (s *Server) authorizeAs(ctx context.Context, act policies.Action, ref resourceRef, res policies.Visibility) error {
	c := callerOf(ctx)
	err := s.policyOf(ctx).Authorize(policies.Access{Principal: c.principal, Network: c.network, Env: ref.env, Action: act, Resource: res})
	if err == nil {
		return nil
	}
	hidden := errors.Is(err, policies.ErrHidden)
	s.denied(ctx, act, ref, err, hidden)
	if hidden {
		return &hiddenError{reason: err, as: ref.missing()}
	}
	return err
}

// denied audits a call refused by the policy. A failure to record it is
// logged: the call is refused either way.
func (s *Server) denied(ctx context.Context, act policies.Action, ref resourceRef, err error, hidden bool) {
	method, _ := grpc.Method(ctx)
	answered := "permission_denied"
	switch {
	case hidden:
		answered = "not_found"
	case errors.Is(err, policies.ErrUnauthenticated):
		answered = "unauthenticated"
	}
	e := callerOf(ctx).stamp(audit.Event{
		Type: audit.TypeAccessDenied, Resource: ref.String(), Decision: audit.Deny, Reason: err.Error(),
		Details: map[string]string{"action": string(act), "env": ref.env, "rpc": method, "answered": answered},
	})
	if aerr := s.audit.Record(context.WithoutCancel(ctx), e); aerr != nil {
		s.log.Error("audit a denied call", "rpc", method, "principal", e.Actor, "err", aerr)
	}
}

// listFilter answers, for the caller in ctx, whether a list shows a
// resource of env created with visibility res: the environment is
// visible to it (Policy.Visible) and its RPC's action allowed on the
// resource. Resources left out are not denials and are not audited. The
// policy is asked once per environment and visibility.
func (s *Server) listFilter(ctx context.Context) func(env string, res policies.Visibility) bool {
	c, pol := callerOf(ctx), s.policyOf(ctx)
	type key struct {
		env string
		res policies.Visibility
	}
	seen := map[key]bool{}
	return func(env string, res policies.Visibility) bool {
		k := key{env, visibilityOf(res)}
		ok, done := seen[k]
		if !done {
			ok = pol.Visible(c.principal, c.network, env) &&
				pol.Authorize(policies.Access{Principal: c.principal, Network: c.network, Env: env, Action: c.action, Resource: k.res}) == nil
			seen[k] = ok
		}
		return ok
	}
}
