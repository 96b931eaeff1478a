package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/udfhost/udfhost/internal/server"
	"github.com/udfhost/udfhost/policies"
)

// policyLoader reads a policy file for `serve --policy` (policies.Load;
// tests give their own). Its error names the file (FILE:LINE:COL:
// problem), so serve prints it as it is.
type policyLoader func(path string) (*policies.Policy, error)

func newServeCmd(g *globals, load policyLoader) *cobra.Command {
	var strict bool
	var listen, httpListen, cpuprofile, policyFile string
	var tlsCert, tlsKey, clientCA, hostID string
	var store, s3Endpoint, s3Region string
	var s3PathStyle bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the service (gRPC API and pre-signed URL endpoint)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Without --policy: the embedded default (nil).
			var policy *policies.Policy
			if policyFile != "" {
				p, err := load(policyFile)
				if err != nil {
					return err
				}
				policy = p
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			// SIGHUP re-reads --policy (server.Reload): always caught, so
			// that it never kills the server, even without --policy (the
			// reload is then refused and logged).
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			setGCPercent()
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			return server.Run(ctx, server.Config{
				DataDir:      g.data,
				Listen:       listen,
				HTTPListen:   httpListen,
				Policy:       policy,
				LoadPolicy:   load,
				Reload:       hup,
				Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
				WorkerStderr: os.Stderr,
				RelaxSandbox: !strict,
				TLSCert:      tlsCert,
				TLSKey:       tlsKey,
				ClientCA:     clientCA,
				HostID:       hostID,
				Store:        store,
				S3Endpoint:   s3Endpoint,
				S3Region:     s3Region,
				S3PathStyle:  s3PathStyle,
			}, 30*time.Second)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7443", "gRPC listen address of the public network (port 0 picks a free one)")
	cmd.Flags().StringVar(&policyFile, "policy", "", "policy file (YAML: environments, networks, pools, principals, connections; docs/POLICY.md), re-read on SIGHUP; default the embedded one: environment and pool \"default\", the admin token in the data directory")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "server certificate (PEM): every gRPC listener serves TLS (1.2 or later); without it they are plaintext, a development setup")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "private key of --tls-cert (PEM)")
	cmd.Flags().StringVar(&clientCA, "client-ca", "", "CA certificates (PEM) that client certificates are verified against; a verified certificate's SPIFFE ID (URI SAN) authenticates the principal with that spiffe_id; clients without one still use bearer tokens")
	cmd.Flags().StringVar(&hostID, "host-id", "", "this host's stable id in audit records and a shared store (a-z, 0-9, '-'); default the one kept in DATA/host-id, made at first start")
	cmd.Flags().StringVar(&store, "store", "local", "where artifacts, quarantines and functions live: local (the data directory, this host only) or s3://BUCKET[/PREFIX], shared by every host given the same one; credentials from the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, shared config)")
	cmd.Flags().StringVar(&s3Endpoint, "s3-endpoint", "", "base URL of the S3 server of an s3:// --store (e.g. http://127.0.0.1:7070 for versitygw); default AWS's own")
	cmd.Flags().StringVar(&s3Region, "s3-region", "", "region of an s3:// --store; default the AWS chain's (AWS_REGION, shared config)")
	cmd.Flags().BoolVar(&s3PathStyle, "s3-path-style", false, "address an s3:// --store's bucket as ENDPOINT/BUCKET, which S3-compatible servers (versitygw, MinIO) usually need")
	cmd.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the host process (for performance work)")
	cmd.Flags().MarkHidden("cpuprofile")
	cmd.Flags().StringVar(&httpListen, "http-listen", "127.0.0.1:7444", "pre-signed URL endpoint listen address")
	cmd.Flags().BoolVar(&strict, "strict", true, "refuse to serve, and refuse workers, when an isolation layer (namespaces, Landlock, seccomp, cgroups, ...) cannot be installed; --strict=false is for development machines")
	return cmd
}

// setGCPercent collects less often than Go's default unless the operator
// set GOGC: the live heap is a few MiB while every batch makes short-lived
// garbage, so the default spends CPU the batches need (measured with
// `udfhost bench`: ~10-40% more rows/s on 2 cores, docs/BENCHMARKS.md).
func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
