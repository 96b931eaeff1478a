package main

import (
	"github.com/spf13/cobra"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// whoamiJSON is what `udfhost whoami` prints.
type whoamiJSON struct {
	Principal string `json:"principal"`
	SPIFFEID  string `json:"spiffe_id,omitempty"`
	Network   string `json:"network"`
	// Roles maps an environment ("*": every environment) to a role.
	Roles map[string]string `json:"roles"`
}

func newWhoAmICmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Print the principal the server authenticates this caller as, its roles and the network the call arrived on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := g.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := udfhostv1.NewIdentityServiceClient(conn).WhoAmI(cmd.Context(), &udfhostv1.WhoAmIRequest{})
			if err != nil {
				return err
			}
			v := whoamiJSON{Principal: resp.Principal, SPIFFEID: resp.SpiffeId, Network: resp.Network, Roles: resp.Roles}
			if v.Roles == nil {
				v.Roles = map[string]string{}
			}
			return printJSON(v)
		},
	}
}
