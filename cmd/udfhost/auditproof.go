package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/udfhost/udfhost/audit"
)

// newAuditPubkeyCmd is `udfhost audit pubkey`: the checkpoints' verifier
// key, to keep somewhere the host cannot write.
func newAuditPubkeyCmd(g *globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "pubkey",
		Short: "Print the note verifier key that checks the audit log's signed checkpoints",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := g.auditDirOf(dir)
			if err != nil {
				return err
			}
			k, err := audit.PublicKey(dir)
			if err != nil {
				return err
			}
			fmt.Println(k)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "audit directory (default <data>/audit)")
	return cmd
}

// newAuditProveCmd is `udfhost audit prove`: an inclusion or consistency
// proof, as one JSON document on stdout, from the files offline.
func newAuditProveCmd(g *globals) *cobra.Command {
	var (
		dir         string
		seq         uint64
		consistency bool
	)
	cmd := &cobra.Command{
		Use:   "prove (--seq N | --consistency OLD NEW)",
		Short: "Print, as JSON, a proof that record N is in the log (against the latest checkpoint) or that checkpoint NEW extends OLD",
		Long: "--seq N: the record's line, its leaf index, the RFC 6962 inclusion proof and the signed checkpoint.\n" +
			"--consistency OLD NEW: the consistency proof between the checkpoints of OLD and NEW records (NEW 0:\n" +
			"the latest) and both signed checkpoints. Anyone holding the verifier key checks either with\n" +
			"`udfhost audit verify-proof FILE --pubkey KEY`, or with their own code (docs/AUDIT.md).",
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := g.auditDirOf(dir)
			if err != nil {
				return err
			}
			var doc []byte
			switch {
			case consistency && seq == 0 && len(args) == 2:
				oldSize, err1 := strconv.ParseUint(args[0], 10, 64)
				newSize, err2 := strconv.ParseUint(args[1], 10, 64)
				if err1 != nil || err2 != nil {
					return fmt.Errorf("--consistency OLD NEW: two tree sizes, got %q %q", args[0], args[1])
				}
				doc, err = audit.ProveConsistency(dir, oldSize, newSize)
			case !consistency && seq > 0 && len(args) == 0:
				doc, err = audit.ProveInclusion(dir, seq)
			default:
				return fmt.Errorf("give either --seq N or --consistency OLD NEW")
			}
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(doc)
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "audit directory (default <data>/audit)")
	cmd.Flags().Uint64Var(&seq, "seq", 0, "prove that the record with this seq is in the log")
	cmd.Flags().BoolVar(&consistency, "consistency", false, "prove that the checkpoint of NEW records extends that of OLD")
	return cmd
}

// newAuditVerifyProofCmd is `udfhost audit verify-proof`: checks a proof
// document with the verifier key and nothing else.
func newAuditVerifyProofCmd() *cobra.Command {
	var pubkey string
	cmd := &cobra.Command{
		Use:   "verify-proof FILE --pubkey KEY",
		Short: "Check an inclusion or consistency proof (from audit prove) with only the verifier key; exit 1 if it does not hold",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pubkey == "" {
				return fmt.Errorf("--pubkey is required: the verifier key (udfhost audit pubkey) you trust")
			}
			v, err := audit.NewVerifier(pubkey)
			if err != nil {
				return err
			}
			var doc []byte
			if args[0] == "-" {
				doc, err = io.ReadAll(os.Stdin)
			} else {
				doc, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			kind, err := audit.VerifyProof(doc, v)
			if err != nil {
				fmt.Fprintf(os.Stderr, "udfhost: proof %s does NOT hold: %v\n", args[0], err)
				return exitCode(1)
			}
			return printJSON(map[string]any{"file": args[0], "ok": true, "type": kind})
		},
	}
	cmd.Flags().StringVar(&pubkey, "pubkey", "", "the verifier key to check the checkpoints with (required)")
	return cmd
}
