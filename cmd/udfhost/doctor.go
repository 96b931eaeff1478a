package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/udfhost/udfhost/sandbox"
)

func newDoctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Start a jailed worker and report, as JSON, each isolation layer and what canary probes inside it could do",
		Long: "Starts a worker exactly as serve does, then runs canary probes inside it after its jail is up\n" +
			"(read /etc/passwd, write /tmp, create a socket, reach the host's loopback, execve, ptrace, see\n" +
			"other processes, raise an rlimit). Layers and probes are measured, not assumed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := sandbox.Doctor(cmd.Context(), sandbox.Config{Stderr: os.Stderr})
			if err != nil {
				return err
			}
			return printJSON(rep)
		},
	}
}
