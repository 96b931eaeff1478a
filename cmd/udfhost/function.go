package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

type functionJSON struct {
	Name       string    `json:"name"`
	Env        string    `json:"env"`
	Pool       string    `json:"pool"`
	ArtifactID string    `json:"artifact_id"`
	Digest     string    `json:"digest"`
	Export     string    `json:"export"`
	Signature  string    `json:"signature"`
	ABI        string    `json:"abi"`
	SPIFFEID   string    `json:"spiffe_id"`
	CreatedAt  time.Time `json:"created_at"`
	// Connections are the egress grants the function may use.
	Connections []string `json:"connections,omitempty"`
	// Limits are the pool's and the server's (see docs/CLIENTS.md).
	Limits *limitsJSON `json:"limits,omitempty"`
}

type limitsJSON struct {
	MaxBatchRows           uint32 `json:"max_batch_rows"`
	MaxBatchBytes          uint64 `json:"max_batch_bytes"`
	MaxMessageBytes        uint64 `json:"max_message_bytes"`
	BatchDeadlineMS        uint32 `json:"batch_deadline_ms"`
	MemoryBytesPerInstance uint64 `json:"memory_bytes_per_instance"`
	InstancesPerWorker     uint32 `json:"instances_per_worker"`
	QueuePerWorker         uint32 `json:"queue_per_worker"`
	FirstRequestTimeoutMS  uint32 `json:"first_request_timeout_ms"`
	StreamIdleTimeoutMS    uint32 `json:"stream_idle_timeout_ms"`
	StreamWindow           uint32 `json:"stream_window"`
}

func functionView(f *udfhostv1.FunctionInfo) functionJSON {
	abi := "direct"
	if f.Abi == udfhostv1.ABI_ABI_BATCH {
		abi = "batch"
	}
	v := functionJSON{
		Name: f.Name, Env: f.Env, Pool: f.Pool, ArtifactID: f.ArtifactId, Digest: f.Digest, Export: f.Export,
		Signature: f.Signature, ABI: abi, SPIFFEID: f.SpiffeId, CreatedAt: f.CreatedAt.AsTime(),
		Connections: f.Connections,
	}
	if l := f.Limits; l != nil {
		v.Limits = &limitsJSON{
			MaxBatchRows: l.MaxBatchRows, MaxBatchBytes: l.MaxBatchBytes, MaxMessageBytes: l.MaxMessageBytes,
			BatchDeadlineMS: l.BatchDeadlineMs, MemoryBytesPerInstance: l.MemoryBytesPerInstance,
			InstancesPerWorker: l.InstancesPerWorker, QueuePerWorker: l.QueuePerWorker,
			FirstRequestTimeoutMS: l.FirstRequestTimeoutMs, StreamIdleTimeoutMS: l.StreamIdleTimeoutMs,
			StreamWindow: l.StreamWindow,
		}
	}
	return v
}

func newFunctionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "function", Short: "Bind artifact exports to SQL functions"}
	var req udfhostv1.CreateFunctionRequest
	var abi string
	create := &cobra.Command{
		Use: "create", Short: "Create a function", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch abi {
			case "auto":
			case "direct":
				req.Abi = udfhostv1.ABI_ABI_DIRECT
			case "batch":
				req.Abi = udfhostv1.ABI_ABI_BATCH
			default:
				return fmt.Errorf("--abi must be auto, direct or batch, not %q", abi)
			}
			return withFunctions(g, func(c udfhostv1.FunctionServiceClient) error {
				f, err := c.CreateFunction(cmd.Context(), &req)
				if err != nil {
					return err
				}
				return printJSON(functionView(f))
			})
		},
	}
	f := create.Flags()
	f.StringVar(&req.Name, "name", "", "function name (required)")
	f.StringVar(&req.ArtifactId, "artifact", "", "artifact id (required)")
	f.StringVar(&req.Export, "export", "", "exported wasm function (required)")
	f.StringVar(&req.Signature, "signature", "", "SQL signature, e.g. '(BIGINT, BIGINT) -> BIGINT' (required)")
	f.StringVar(&req.Env, "env", "default", "environment")
	f.StringVar(&req.Pool, "pool", "default", "compute pool")
	f.StringVar(&abi, "abi", "auto", "auto, direct or batch (see docs/ABI.md)")
	f.StringArrayVar(&req.Connections, "connection", nil, "a connection of the environment (policy file) the function may use; repeat for several, the first is its default (connector artifacts only; see docs/CONNECTORS.md)")
	for _, name := range []string{"name", "artifact", "export", "signature"} {
		create.MarkFlagRequired(name)
	}

	var env string
	list := &cobra.Command{
		Use: "list", Short: "List functions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withFunctions(g, func(c udfhostv1.FunctionServiceClient) error {
				resp, err := c.ListFunctions(cmd.Context(), &udfhostv1.ListFunctionsRequest{Env: env})
				if err != nil {
					return err
				}
				out := []functionJSON{}
				for _, f := range resp.Functions {
					out = append(out, functionView(f))
				}
				return printJSON(out)
			})
		},
	}
	list.Flags().StringVar(&env, "env", "", "only this environment")
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a function (NAME or ORG.ENV.NAME)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withFunctions(g, func(c udfhostv1.FunctionServiceClient) error {
				f, err := c.GetFunction(cmd.Context(), &udfhostv1.GetFunctionRequest{Name: args[0], Env: env})
				if err != nil {
					return err
				}
				return printJSON(functionView(f))
			})
		},
	}
	get.Flags().StringVar(&env, "env", "", envRefHelp)
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a function (NAME or ORG.ENV.NAME)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withFunctions(g, func(c udfhostv1.FunctionServiceClient) error {
				if _, err := c.DeleteFunction(cmd.Context(), &udfhostv1.DeleteFunctionRequest{Name: args[0], Env: env}); err != nil {
					return err
				}
				return printJSON(map[string]string{"deleted": args[0]})
			})
		},
	}
	del.Flags().StringVar(&env, "env", "", envRefHelp)
	cmd.AddCommand(create, list, get, del)
	return cmd
}

func withFunctions(g *globals, fn func(udfhostv1.FunctionServiceClient) error) error {
	conn, err := g.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(udfhostv1.NewFunctionServiceClient(conn))
}
