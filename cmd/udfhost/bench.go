package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/abi/abipb"
	"github.com/udfhost/udfhost/internal/tools/loadgen"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

func newBenchCmd(g *globals) *cobra.Command {
	var cfg loadgen.Config
	var signature string
	cmd := &cobra.Command{
		Use:   "bench --function NAME",
		Short: "Load-test a function with generated batches; prints rows/s, batches/s and batch latency as JSON",
		Long: "Drives InvokeStream (or unary Invoke with --unary) with generated batches that fit the function's\n" +
			"signature, from --streams streams with --window batches in flight each, and prints one JSON object:\n" +
			"throughput over the measured window after --warmup, p50/p99/max batch latency, and failed batches\n" +
			"(counted, not fatal; resource_exhausted is the part the server shed).\n\n" +
			"--echo sends the same traffic to an echo server inside this process instead (no --addr, no token):\n" +
			"same services and messages, no sandbox work, so the ceiling gRPC alone allows on this machine.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Function == "" && !cfg.Echo {
				return errors.New("--function is required (except with --echo)")
			}
			if cfg.Function == "" {
				cfg.Function = "echo"
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			switch {
			case signature != "":
				args, result, err := functions.ParseSignature(signature)
				if err != nil {
					return err
				}
				cfg.Args, cfg.Result = abipb.ToTypes(args), udfhostv1.SqlType(result)
			case cfg.Echo:
				return errors.New("--echo needs --signature: there is no server to ask for the function's types")
			default:
				conn, err := g.dial()
				if err != nil {
					return err
				}
				fn, err := udfhostv1.NewFunctionServiceClient(conn).GetFunction(ctx, &udfhostv1.GetFunctionRequest{Name: cfg.Function, Env: cfg.Env})
				conn.Close()
				if err != nil {
					return err
				}
				cfg.Args, cfg.Result = fn.ArgTypes, fn.ResultType
			}
			// Config reads 0 as "default"; on the command line it is a
			// mistake.
			for _, c := range []struct {
				flag string
				v    int
			}{{"batch", cfg.BatchRows}, {"streams", cfg.Streams}, {"window", cfg.Window}, {"value-size", cfg.ValueSize}} {
				if c.v < 1 {
					return fmt.Errorf("--%s must be at least 1, not %d", c.flag, c.v)
				}
			}
			if cfg.Rows == 0 && cfg.Duration <= 0 {
				return fmt.Errorf("--duration must be positive (or give --rows), not %v", cfg.Duration)
			}
			if !cfg.Echo {
				cfg.Addr, cfg.Dial = g.addr, g.dial
			}
			res, err := loadgen.Run(ctx, cfg)
			// Run returns context.Canceled itself (unwrapped) only when
			// interrupted mid-run; what it measured so far is still worth
			// printing.
			if err != nil && err != context.Canceled {
				return err
			}
			return printJSON(res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Function, "function", "", "function name (required unless --echo)")
	f.StringVar(&cfg.Env, "env", "", envRefHelp)
	f.StringVar(&signature, "signature", "", "SQL signature, e.g. '(BIGINT, BIGINT, BIGINT) -> BIGINT' (default: the function's, from the server; required with --echo)")
	f.Int64Var(&cfg.Rows, "rows", 0, "rows to send after warmup, then stop (0: run for --duration)")
	f.IntVar(&cfg.BatchRows, "batch", 1024, "rows per batch")
	f.IntVar(&cfg.Streams, "streams", 1, "concurrent streams (with --unary: concurrent callers)")
	f.IntVar(&cfg.Conns, "conns", 0, "gRPC connections the streams share round-robin (0: one per core, at most one per stream; measured fastest)")
	f.Float64Var(&cfg.Rate, "rate", 0, "batches per second, all streams together (0: as fast as answers come back)")
	f.IntVar(&cfg.Window, "window", 1, "batches in flight per stream (1: send, wait for the answer, send the next)")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to measure when --rows is 0")
	f.DurationVar(&cfg.Warmup, "warmup", time.Second, "load before measuring, not counted")
	f.BoolVar(&cfg.Unary, "unary", false, "unary Invoke calls (--window concurrent per stream) instead of InvokeStream")
	f.BoolVar(&cfg.Echo, "echo", false, "target a built-in echo server (the gRPC ceiling) instead of --addr")
	f.IntVar(&cfg.ValueSize, "value-size", 16, "bytes per VARCHAR/BYTES value")
	f.Float64Var(&cfg.Nulls, "nulls", 0, "fraction of NULL rows per column (0 to 1)")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed for the generated batches")
	return cmd
}
