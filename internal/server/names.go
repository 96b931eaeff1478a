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

// lookupFunction returns the function name in env ("" for "default")
// for the RPC of ctx: the names are checked first; then the caller is
// authorized for its RPC's action in env, on the visibility the function
// was created with if it exists (a caller that may not see env is
// answered as if env did not exist, whether the function does or not);
// then an environment the policy does not have is reported as such
// (NOT_FOUND), not as a missing function.
func (s *Server) lookupFunction(ctx context.Context, env, name string) (*functions.Function, error) {
	env = envOrDefault(env)
	if err := s.checkNames(ctx, nameArg{names.Env, env}, nameArg{names.Function, name}); err != nil {
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

// checkSignature bounds a signature's length before it is parsed (a parse
// error quotes it).
func checkSignature(sig string) error {
	if len(sig) > maxSignatureBytes {
		return fmt.Errorf("%w: signature: at most %d bytes, got %d bytes", errInvalid, maxSignatureBytes, len(sig))
	}
	return nil
}
