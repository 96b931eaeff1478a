package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/udfhost/udfhost/internal/tools/sectest"
)

func newSecurityTestCmd(g *globals) *cobra.Command {
	var cfg sectest.Config
	var only, writePolicy string
	cmd := &cobra.Command{
		Use:   "security-test",
		Short: "Attack a running server with the hostile-artifact corpus and report what it stopped and audited",
		Long: "Uploads every case of the corpus (--corpus: manifest.json and the built modules, `make hostile`)\n" +
			"through the server's public API, exercises it, and prints one JSON line per case: whether the server\n" +
			"stopped it where it must (stopped), wrote the audit record it must (audited, read from\n" +
			"<data>/audit/audit.log), and whether a well-behaved canary function on another pod identity kept\n" +
			"answering (canary_ok); then a summary line. Exits 1 if any case failed. The egress cases need the server\n" +
			"to run the policy --write-policy writes (serve --policy FILE, and --policy FILE here).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if writePolicy != "" {
				path, err := sectest.WritePolicy(writePolicy)
				if err != nil {
					return err
				}
				fmt.Println(path)
				return nil
			}
			tok, err := g.tokenValue()
			if err != nil {
				return err
			}
			if only != "" {
				if cfg.Only, err = regexp.Compile(only); err != nil {
					return fmt.Errorf("--only: %w", err)
				}
			}
			cfg.Addr, cfg.Token, cfg.DataDir, cfg.Out = g.addr, tok, g.data, os.Stdout
			sum, err := sectest.Run(cmd.Context(), cfg)
			if errors.Is(err, sectest.ErrFailed) {
				fmt.Fprintf(os.Stderr, "udfhost: security test: %d of %d cases failed: %s\n", len(sum.Failed), sum.Cases, strings.Join(sum.Failed, ", "))
				return exitCode(1)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Corpus, "corpus", filepath.Join("bin", "hostile"), "directory with manifest.json and the built hostile modules")
	f.StringVar(&cfg.Canary, "canary", filepath.Join("bin", "examples", "add.wasm"), "well-behaved module called throughout (export add, (BIGINT, BIGINT) -> BIGINT)")
	f.IntVar(&cfg.ServerPID, "server-pid", 0, "server process for memory checks (default: the local process listening on --addr)")
	f.StringVar(&cfg.ServerLog, "server-log", "", "server log file, checked for leaked guest output")
	f.StringVar(&only, "only", "", "run only the cases whose name matches this regular expression")
	f.IntVar(&cfg.Parallel, "parallel", 4, "cases run at once")
	f.StringVar(&cfg.Policy, "policy", "", "the policy file the server runs, written by --write-policy (the egress cases need it)")
	f.StringVar(&writePolicy, "write-policy", "", "write the policy a server under the suite must run (serve --policy) into this directory, print its path and exit")
	return cmd
}

// tokenValue is the bearer token dial sends: --token (or UDFHOST_TOKEN),
// else the server's <data>/admin.token. Surrounding whitespace is dropped
// from either (the file ends in a newline, CRLF if edited on Windows, and
// "$(cat file)" keeps a CR).
func (g *globals) tokenValue() (string, error) {
	if tok := strings.TrimSpace(g.token); tok != "" {
		return tok, nil
	}
	path := filepath.Join(g.data, "admin.token")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no token: pass --token or UDFHOST_TOKEN, or point --data at the server's data directory (%v)", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("no token: %s is empty", path)
	}
	return tok, nil
}
