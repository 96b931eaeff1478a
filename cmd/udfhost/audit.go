package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/udfhost/udfhost/audit"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
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
	cmd.AddCommand(verify, newAuditReadCmd(g), newAuditTailCmd(g))
	return cmd
}

// newAuditReadCmd is `udfhost audit read`: the records the caller may
// read, over gRPC (AuditService.ReadAudit), one JSON line each, exactly
// the line the server's log holds (so each line's hash can be checked,
// and consecutive lines' prev and hash chain).
func newAuditReadCmd(g *globals) *cobra.Command {
	var (
		env, typ string
		since    uint64
		limit    uint32
	)
	cmd := &cobra.Command{
		Use:   "read",
		Short: "Print the audit records this caller may read (admin or auditor) from a server, as JSON lines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := g.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			stream, err := udfhostv1.NewAuditServiceClient(conn).ReadAudit(cmd.Context(),
				&udfhostv1.ReadAuditRequest{Env: env, SinceSeq: since, Limit: limit, Type: typ})
			if err != nil {
				return err
			}
			out := bufio.NewWriter(os.Stdout)
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return out.Flush()
				}
				if err != nil {
					out.Flush()
					return err
				}
				line, err := json.Marshal(recordOf(m))
				if err != nil {
					return fmt.Errorf("encode record %d: %w", m.Seq, err)
				}
				if _, err := out.Write(append(line, '\n')); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only this environment's records (default: every record this caller may read)")
	cmd.Flags().Uint64Var(&since, "since", 0, "first seq to print (0: from the start)")
	cmd.Flags().Uint32Var(&limit, "limit", 0, "at most this many records (0: the server's default, 1000; at most 10000)")
	cmd.Flags().StringVar(&typ, "type", "", "only records of this type, say access.denied")
	return cmd
}

// recordOf is the log's record of m; a time that does not parse is left
// zero (and the record's hash then does not check).
func recordOf(m *udfhostv1.AuditRecord) audit.Record {
	t, _ := time.Parse(time.RFC3339Nano, m.Time)
	return audit.Record{
		Seq: m.Seq, Time: t, Type: m.Type, Actor: m.Actor, SPIFFEID: m.SpiffeId, Network: m.Network, Pod: m.Pod,
		Resource: m.Resource, Decision: m.Decision, Reason: m.Reason, RequestID: m.RequestId, Host: m.Host, Details: m.Details,
		Prev: m.Prev, Hash: m.Hash,
	}
}
