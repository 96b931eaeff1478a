package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// Backoff of `audit tail --follow` while the server is unavailable (a
// restart): from the first to the longest wait, doubling.
const (
	tailRetryFirst = time.Second
	tailRetryMax   = 10 * time.Second
)

// newAuditTailCmd is `udfhost audit tail`: the records the caller may
// read, over gRPC (AuditService.Tail), each printed as its line in the
// server's log, byte for byte, for a SIEM pipeline to ingest. With
// --follow it prints new records as they become durable until
// interrupted (SIGINT or SIGTERM: exit 0), and rides out a server
// restart by tailing again from the record after the last one printed.
func newAuditTailCmd(g *globals) *cobra.Command {
	var (
		env, typ string
		since    uint64
		follow   bool
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print audit records (admin or auditor) as the log's JSON lines; --follow keeps printing new ones",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			conn, err := g.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			client := udfhostv1.NewAuditServiceClient(conn)
			req := &udfhostv1.TailRequest{Env: env, SinceSeq: since, Type: typ, Follow: follow}
			wait := tailRetryFirst
			for {
				printed, err := tailOnce(ctx, client, req, os.Stdout)
				switch {
				case ctx.Err() != nil:
					return nil // interrupted
				case err == nil:
					return nil
				case !follow || status.Code(err) != codes.Unavailable:
					return err
				}
				if printed {
					wait = tailRetryFirst
				}
				fmt.Fprintf(os.Stderr, "udfhost: audit tail: %s; tailing again from seq %d in %s\n", errorLine(err), req.SinceSeq, wait)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
				wait = min(2*wait, tailRetryMax)
			}
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only this environment's records (default: every record this caller may read)")
	cmd.Flags().Uint64Var(&since, "since", 0, "first seq to print (0: from the start)")
	cmd.Flags().StringVar(&typ, "type", "", "only records of this type, say access.denied")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing records as they are written, until interrupted")
	return cmd
}

// tailOnce runs one Tail call, writing each record's line to out as it
// arrives, and moves req.SinceSeq past each one printed. printed says
// whether it printed any.
func tailOnce(ctx context.Context, client udfhostv1.AuditServiceClient, req *udfhostv1.TailRequest, out io.Writer) (printed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Tail(ctx, req)
	if err != nil {
		return false, err
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return printed, nil
		}
		if err != nil {
			return printed, err
		}
		// One write per line, unbuffered: a follower sees each record
		// as soon as the server sends it.
		if _, err := out.Write(append(m.Line, '\n')); err != nil {
			return printed, fmt.Errorf("write record %d: %w", m.Record.GetSeq(), err)
		}
		printed = true
		req.SinceSeq = m.Record.GetSeq() + 1
	}
}
