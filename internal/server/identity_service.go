package server

import (
	"context"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// identityService tells a caller how the server sees it.
type identityService struct {
	udfhostv1.UnimplementedIdentityServiceServer
	s *Server
}

// WhoAmI answers any authenticated caller (rpcActions: anyPrincipal): its
// principal, its roles and the network the call arrived on. It never
// shows a token or a token's hash.
func (is *identityService) WhoAmI(ctx context.Context, _ *udfhostv1.WhoAmIRequest) (*udfhostv1.WhoAmIResponse, error) {
	c := callerOf(ctx)
	resp := &udfhostv1.WhoAmIResponse{Principal: c.name, SpiffeId: c.spiffeID, Network: c.network, Roles: map[string]string{}}
	if c.principal != nil {
		for env, role := range c.principal.Roles {
			resp.Roles[env] = string(role)
		}
	}
	return resp, nil
}
