package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/udfhost/udfhost/audit"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Inspect the audit log"}
	var file string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the whole hash chain offline; exit 1 naming the first bad record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				file = filepath.Join(g.data, "audit", "audit.log")
			}
			sum, err := audit.Verify(file)
			if err != nil {
				var ve *audit.VerifyError
				if errors.As(err, &ve) {
					fmt.Fprintf(os.Stderr, "udfhost: audit log %s is NOT intact: %v\n", file, err)
					return exitCode(1)
				}
				return err
			}
			return printJSON(map[string]any{"file": file, "ok": true, "records": sum.Records, "last_seq": sum.LastSeq, "last_hash": sum.LastHash})
		},
	}
	verify.Flags().StringVar(&file, "file", "", "log file (default <data>/audit/audit.log)")
	cmd.AddCommand(verify)
	return cmd
}
