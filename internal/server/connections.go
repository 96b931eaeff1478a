package server

import (
	"fmt"
	"slices"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/internal/names"
	"github.com/udfhost/udfhost/policies"
)

// maxConnections bounds the connections one function is bound to.
const maxConnections = 16

// checkConnections checks a function's requested connections against the
// policy at create time: each is a connection of the function's own
// environment, named once, and only a connector artifact may have any
// (a UDF cannot import the egress module, so a grant to one would be a
// grant nobody can see used). The broker checks each again, against the
// policy current then, on every request.
func checkConnections(pol *policies.Policy, art *artifacts.Artifact, env string, want []string) ([]string, error) {
	if len(want) == 0 {
		return nil, nil
	}
	if art.Kind != artifacts.KindConnector {
		return nil, fmt.Errorf("%w: artifact %s is a %s; only a connector artifact may use connections (upload it with --kind connector)", errInvalid, art.ID, art.Kind)
	}
	if len(want) > maxConnections {
		return nil, fmt.Errorf("%w: %d connections; a function has at most %d", errInvalid, len(want), maxConnections)
	}
	out := make([]string, 0, len(want))
	for _, name := range want {
		if err := names.Function.Check(name); err != nil {
			return nil, fmt.Errorf("%w: connection: %v", errInvalid, err)
		}
		if slices.Contains(out, name) {
			return nil, fmt.Errorf("%w: connection %q is named twice", errInvalid, name)
		}
		if _, err := pol.Connection(env, name); err != nil {
			return nil, fmt.Errorf("%w: environment %q has no connection %q in the policy", errInvalid, env, name)
		}
		out = append(out, name)
	}
	return out, nil
}
