package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/sandbox"
)

func newDoctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Start a jailed worker and report, as JSON, each isolation layer and what canary probes inside it could do",
		Long: "Starts a worker exactly as serve does, then runs canary probes inside it after its jail is up\n" +
			"(read /etc/passwd, write outside its private /tmp, create a socket, reach the host's loopback,\n" +
			"execve, ptrace, see other processes, raise an rlimit, become root, mount, fork), each in a\n" +
			"worker of its own, since a probe the seccomp filter traps ends its worker. Layers and probes\n" +
			"are measured, not assumed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, err := sandbox.NewHost()
			if err != nil {
				return err
			}
			defer host.Close()
			// Not strict: the doctor reports missing layers rather than
			// refusing to start the worker that would show them.
			rep, err := sandbox.Doctor(cmd.Context(), host.Config(sandbox.Config{}))
			if err != nil {
				return err
			}
			if err := printJSON(rep); err != nil {
				return err
			}
			// The audit log's append-only inode flag, tried where the log lives.
			dir := filepath.Join(cmd.Flag("data").Value.String(), "audit")
			if err := audit.ProbeAppendOnly(dir); err != nil {
				fmt.Fprintf(os.Stderr, "udfhost: audit append-only flag (FS_APPEND_FL) in %s: not available: %v\n", dir, err)
			} else {
				fmt.Fprintf(os.Stderr, "udfhost: audit append-only flag (FS_APPEND_FL) in %s: available\n", dir)
			}
			return nil
		},
	}
}
