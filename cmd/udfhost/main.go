// Command udfhost is the sandboxed UDF execution service and its client:
// `serve` runs the service, the other subcommands talk to one.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/bearer"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/sandbox"
)

// globals are the flags every subcommand takes (DESIGN §3).
type globals struct {
	addr, data, token string
	// tlsCA, tlsCert and tlsKey (PEM files) make the client speak TLS:
	// tlsCA verifies the server, tlsCert/tlsKey are its client
	// certificate (mTLS).
	tlsCA, tlsCert, tlsKey string
}

func main() {
	// The worker is this binary re-executed; it must not parse flags or
	// touch anything else first.
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		setGCPercent() // the worker's environment is empty, so always
		os.Exit(sandbox.WorkerMain())
	}
	if err := newRoot().Execute(); err != nil {
		var ec exitCode
		if errors.As(err, &ec) { // the command printed its own message
			os.Exit(int(ec))
		}
		fmt.Fprintln(os.Stderr, "udfhost: "+errorLine(err))
		os.Exit(1)
	}
}

// exitCode lets a command choose its exit status after printing its own
// message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// errorLine renders an error as one line; gRPC errors lose their
// "rpc error: code = … desc =" wrapping but keep the code in words, once:
// a message that starts with them already is printed as it is.
func errorLine(err error) string {
	if st, ok := status.FromError(err); ok {
		line, words := st.Message(), codeWords(st.Code().String())
		if !strings.HasPrefix(line, words+": ") {
			line = words + ": " + line
		}
		// A plaintext client of a TLS server sees the connection closed
		// before any HTTP/2 arrives.
		if st.Code() == codes.Unavailable && strings.Contains(line, "error reading server preface") {
			line += " (is the server serving TLS? connect with --tls-ca)"
		}
		return strings.ReplaceAll(line, "\n", " ")
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func codeWords(code string) string {
	var b strings.Builder
	for i, r := range code {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "udfhost",
		Short:         "Sandboxed execution service for WebAssembly UDFs and connectors",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.addr, "addr", envOr("UDFHOST_ADDR", "127.0.0.1:7443"), "gRPC address of the server (env UDFHOST_ADDR)")
	root.PersistentFlags().StringVar(&g.data, "data", envOr("UDFHOST_DATA", "udfhost-data"), "data directory (env UDFHOST_DATA)")
	root.PersistentFlags().StringVar(&g.token, "token", os.Getenv("UDFHOST_TOKEN"), "bearer token (env UDFHOST_TOKEN; default <data>/admin.token)")
	root.PersistentFlags().StringVar(&g.tlsCA, "tls-ca", os.Getenv("UDFHOST_TLS_CA"), "CA certificate (PEM) of a TLS server: connect over TLS and verify the server with it (env UDFHOST_TLS_CA)")
	root.PersistentFlags().StringVar(&g.tlsCert, "tls-cert", os.Getenv("UDFHOST_TLS_CERT"), "client certificate (PEM) for mTLS: its SPIFFE ID authenticates the caller (env UDFHOST_TLS_CERT)")
	root.PersistentFlags().StringVar(&g.tlsKey, "tls-key", os.Getenv("UDFHOST_TLS_KEY"), "private key of --tls-cert (PEM) (env UDFHOST_TLS_KEY)")
	root.AddCommand(
		newServeCmd(g, policies.Load),
		newWhoAmICmd(g),
		&cobra.Command{Use: "worker", Hidden: true, Run: func(*cobra.Command, []string) {}},
		newArtifactCmd(g),
		newFunctionCmd(g),
		newInvokeCmd(g),
		newBenchCmd(g),
		newDoctorCmd(),
		newAuditCmd(g),
		newSecurityTestCmd(g),
		newPolicyCmd(g),
	)
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// dial connects to the server with the caller's token on every call.
func (g *globals) dial() (*grpc.ClientConn, error) {
	creds, err := g.transport()
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	// Over mTLS without --token, the certificate alone authenticates.
	if !g.certOnly() {
		tok, err := g.tokenValue()
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithPerRPCCredentials(bearer.Token(tok)))
	}
	conn, err := grpc.NewClient(g.addr, append(opts,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(80<<20), grpc.MaxCallSendMsgSize(80<<20)),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", g.addr, err)
	}
	return conn, nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
