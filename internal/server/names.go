package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/names"
	"github.com/udfhost/udfhost/policies"
)

// maxSignatureBytes bounds a CreateFunction signature: 64 arguments of
// the longest type name fit in well under it.
const maxSignatureBytes = 1024

// nameArg is one name a request carries, with its kind.
type nameArg struct {
	kind  names.Kind
	value string
}

// checkNames refuses the first name outside its grammar (package names).
// Every RPC that takes a name calls it before any lookup, lock, worker
// start or allow record; the refusal is audited with the name quoted and
// truncated, and answered INVALID_ARGUMENT in one line that never echoes
// more than a short prefix of the name.
func (s *Server) checkNames(ctx context.Context, args ...nameArg) error {
	for _, a := range args {
		if err := a.kind.Check(a.value); err != nil {
			s.refused(ctx, a.kind.What, err)
			return err
		}
	}
	return nil
}

// refused audits a request refused before it did anything. A failure to
// record it is logged: the request is refused either way.
func (s *Server) refused(ctx context.Context, field string, err error) {
	method, _ := grpc.Method(ctx)
	if aerr := s.audit.Record(ctx, callerOf(ctx).stamp(audit.Event{
		Type: audit.TypePolicyDenied, Resource: "rpc" + method,
		Decision: audit.Deny, Reason: err.Error(), Details: map[string]string{"field": field},
	})); aerr != nil {
		s.log.Error("audit a refused request", "rpc", method, "err", aerr)
	}
}

// lookupFunction returns the function the RPC of ctx names, by env ("" for
// "default") and name or by the three-part name org.env.function
// (resolveFunction): the names are checked first; then the caller is
// authorized for its RPC's action in the environment named, on the
// visibility the function was created with if it exists (a caller that
// may not see the environment is answered as if it did not exist,
// whether the function does or not); then an environment the policy does
// not have is reported as such (NOT_FOUND), not as a missing function.
// A three-part name goes through exactly the same authorization as
// env and name given apart: nothing about it bypasses the matrix or the
// caller's roles.
func (s *Server) lookupFunction(ctx context.Context, env, name string) (*functions.Function, error) {
	env, name, err := s.resolveFunction(ctx, env, name)
	if err != nil {
		return nil, err
	}
	f, ferr := s.fns.Get(env, name)
	var res policies.Visibility
	if ferr == nil {
		res = visibilityOf(f.Visibility)
	}
	if err := s.authorize(ctx, functionRef(env, name), res); err != nil {
		return nil, err
	}
	if _, err := s.policyOf(ctx).Env(env); err != nil {
		return nil, err
	}
	return f, ferr
}

// resolveFunction checks a call's env and function fields and returns the
// environment and function name they mean. The function field may be the
// three-part name org.env.function (names.FunctionRef); the env field
// must then be empty or its middle part (INVALID_ARGUMENT naming both),
// and org the policy's org. A name in another org is answered exactly as
// a function in an environment the caller may not see or that does not
// exist (NOT_FOUND, the same bytes whatever exists here), and its
// refusal audited: the answer tells nothing of other orgs, nor of this
// one.
func (s *Server) resolveFunction(ctx context.Context, env, name string) (string, string, error) {
	if err := s.checkNames(ctx, nameArg{names.Env, envOrDefault(env)}, nameArg{names.FunctionRef, name}); err != nil {
		return "", "", err
	}
	org, qenv, fn, qualified := names.SplitFunctionRef(name)
	if !qualified {
		return envOrDefault(env), name, nil
	}
	if env != "" && env != qenv {
		err := fmt.Errorf("%w: function %q names environment %q, but env is %q: give env empty or the same", errInvalid, name, qenv, env)
		s.refused(ctx, "env", err)
		return "", "", err
	}
	if pol := s.policyOf(ctx); org != pol.Org {
		ref := functionRef(qenv, fn)
		err := fmt.Errorf("%w: principal %q: function %q names org %q; this server serves org %q", policies.ErrHidden, callerOf(ctx).name, name, org, pol.Org)
		s.denied(ctx, callerOf(ctx).action, ref, err, true)
		return "", "", &hiddenError{reason: err, as: ref.missing()}
	}
	return qenv, fn, nil
}

// functionTarget is the function a request names by env and name, as
// resolveFunction would resolve it, for the record of a call refused
// before its names are checked.
func functionTarget(env, name string) resourceRef {
	if _, qenv, fn, ok := names.SplitFunctionRef(name); ok && (env == "" || env == qenv) {
		return functionRef(qenv, fn)
	}
	return functionRef(envOrDefault(env), name)
}

// checkSignature bounds a signature's length before it is parsed (a parse
// error quotes it).
func checkSignature(sig string) error {
	if len(sig) > maxSignatureBytes {
		return fmt.Errorf("%w: signature: at most %d bytes, got %d bytes", errInvalid, maxSignatureBytes, len(sig))
	}
	return nil
}
