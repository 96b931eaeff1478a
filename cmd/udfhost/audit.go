package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/udfhost/udfhost/audit"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Inspect, verify and prove the audit log"}
	cmd.AddCommand(newAuditVerifyCmd(g), newAuditReadCmd(g), newAuditPubkeyCmd(g), newAuditProveCmd(g), newAuditVerifyProofCmd(), newAuditTailCmd(g))
	return cmd
}

// auditDir is the data directory's audit log directory.
func (g *globals) auditDir() string { return filepath.Join(g.data, "audit") }

// auditDirOf is --dir, or the data directory's audit directory, which
// must exist: a mistyped --data or --dir is named as such, not as a key
// or log file missing under it.
func (g *globals) auditDirOf(dir string) (string, error) {
	if dir == "" {
		dir = g.auditDir()
	}
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("no audit log at %s (--data or --dir): %w", dir, err)
	}
	return dir, nil
}

// newAuditVerifyCmd is `udfhost audit verify`: the whole log offline.
func newAuditVerifyCmd(g *globals) *cobra.Command {
	var file, dir, pubkey string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log offline (chain, Merkle tree, signed checkpoints); exit 1 naming the first bad record or checkpoint",
		Long: "Recomputes the hash chain over every segment, the RFC 6962 Merkle tree over every record, and checks\n" +
			"every signed checkpoint against them (signature, root hash, consistency with the one before), that\n" +
			"the last checkpoint covers every record, and each sealed segment ends at one. Without --pubkey the\n" +
			"key next to the log is used, which proves only that the log agrees with itself: give the key you\n" +
			"kept (udfhost audit pubkey) to detect a log re-signed with a new key. --file checks one file's hash\n" +
			"chain only (say a copy of audit.log on its own).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" {
				sum, err := audit.Verify(file)
				if err != nil {
					var ve *audit.VerifyError
					if errors.As(err, &ve) {
						fmt.Fprintf(os.Stderr, "udfhost: audit log %s is NOT intact: %v\n", file, err)
						return exitCode(1)
					}
					return err
				}
				return printJSON(map[string]any{"file": file, "ok": true, "checked": "hash chain only (--file)", "records": sum.Records, "last_seq": sum.LastSeq, "last_hash": sum.LastHash})
			}
			dir, err := g.auditDirOf(dir)
			if err != nil {
				return err
			}
			v, keyFrom, err := auditVerifier(dir, pubkey)
			if err != nil {
				return err
			}
			rep, err := audit.VerifyLog(dir, v)
			if err != nil {
				var (
					ve *audit.VerifyError
					ce *audit.CheckpointError
					ue *audit.UncoveredError
				)
				if errors.As(err, &ve) || errors.As(err, &ce) || errors.As(err, &ue) {
					fmt.Fprintf(os.Stderr, "udfhost: audit log %s is NOT intact: %v\n(checked with the key %s, %s)\n", dir, err, v.Name()+"+"+fmt.Sprintf("%08x", v.KeyHash()), keyFrom)
					return exitCode(1)
				}
				return err
			}
			out := map[string]any{
				"dir": dir, "ok": true, "records": rep.Records, "last_seq": rep.LastSeq, "last_hash": rep.LastHash,
				"files": len(rep.Files), "checkpoints": rep.Checkpoints, "covered": rep.Covered, "final": rep.Final,
				"root": base64.StdEncoding.EncodeToString(rep.Root), "key": fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()), "key_from": keyFrom,
			}
			return printJSON(out)
		},
	}
	cmd.Flags().StringVar(&pubkey, "pubkey", "", "verifier key to check the checkpoints with (default: the key next to the log)")
	cmd.Flags().StringVar(&dir, "dir", "", "audit directory (default <data>/audit)")
	cmd.Flags().StringVar(&file, "file", "", "check only this file's hash chain (no checkpoints)")
	return cmd
}

// auditVerifier returns the verifier for pubkey, or else the one of the
// key next to the log in dir, and says which.
func auditVerifier(dir, pubkey string) (note.Verifier, string, error) {
	if pubkey != "" {
		v, err := audit.NewVerifier(pubkey)
		return v, "given with --pubkey", err
	}
	vkey, err := audit.PublicKey(dir)
	if err != nil {
		return nil, "", fmt.Errorf("%w; give the verifier key with --pubkey", err)
	}
	v, err := audit.NewVerifier(vkey)
	return v, "from " + filepath.Join(dir, audit.KeyFileName) + ", next to the log (so this shows the log agrees with itself; give --pubkey with a key kept elsewhere to detect a log re-signed with another key)", err
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
