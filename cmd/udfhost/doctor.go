package main

import (
	"github.com/spf13/cobra"

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
			return printJSON(rep)
		},
	}
}
