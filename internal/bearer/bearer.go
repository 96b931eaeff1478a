// Package bearer is the client side of udfhost's authentication: the
// gRPC credentials that send "authorization: Bearer <token>" on every
// call, for the CLI, the load generator and the security suite.
package bearer

import (
	"context"
	"strings"
)

// Token is a bearer token as grpc.PerRPCCredentials. The whitespace a
// token read from a file keeps (its newline, a CR) is not sent; an empty
// token sends no header. Plaintext is allowed: these clients talk to a
// loopback development listener.
type Token string

// GetRequestMetadata returns the authorization header for tok.
func (tok Token) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	t := strings.TrimSpace(string(tok))
	if t == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + t}, nil
}

// RequireTransportSecurity reports false: see Token.
func (Token) RequireTransportSecurity() bool { return false }
