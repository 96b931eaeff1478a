package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/udfhost/udfhost/policies"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Work with policy files (see docs/POLICY.md)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Validate a policy file offline, as serve --policy would",
		Long: "Loads FILE exactly as serve --policy does (token files included) and checks it against\n" +
			"the --data directory's record of environments served as private, if there is one.\n" +
			"Prints a one-line summary, or the first problem as FILE:LINE:COL: problem and exits 1.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := policies.Load(args[0])
			if err == nil {
				err = policies.CheckServed(g.data, p)
			}
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), errorLine(err))
				return exitCode(1)
			}
			fmt.Fprintln(cmd.OutOrStdout(), args[0]+": "+p.Summary())
			return nil
		},
	})
	return cmd
}
