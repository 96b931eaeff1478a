package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// artifactJSON is the CLI's stable JSON view of an artifact.
type artifactJSON struct {
	ID         string       `json:"id"`
	Digest     string       `json:"digest"`
	Size       int64        `json:"size"`
	Kind       string       `json:"kind"`
	Env        string       `json:"env"`
	Name       string       `json:"name,omitempty"`
	ABIVersion uint32       `json:"abi_version"`
	Exports    []exportJSON `json:"exports"`
	Imports    []string     `json:"imports"`
	CreatedAt  time.Time    `json:"created_at"`
	// Quarantined artifacts' functions are refused until `artifact release`.
	Quarantined      bool       `json:"quarantined"`
	QuarantineReason string     `json:"quarantine_reason,omitempty"`
	QuarantinedAt    *time.Time `json:"quarantined_at,omitempty"`
}

type exportJSON struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func artifactView(a *udfhostv1.Artifact) artifactJSON {
	v := artifactJSON{
		ID: a.Id, Digest: a.Digest, Size: a.Size, Env: a.Env, Name: a.Name, ABIVersion: a.AbiVersion,
		Kind: "udf", Imports: a.Imports, CreatedAt: a.CreatedAt.AsTime(), Exports: []exportJSON{},
	}
	if a.Kind == udfhostv1.ArtifactKind_ARTIFACT_KIND_CONNECTOR {
		v.Kind = "connector"
	}
	if v.Imports == nil {
		v.Imports = []string{}
	}
	if a.Quarantined {
		v.Quarantined, v.QuarantineReason = true, a.QuarantineReason
		if a.QuarantinedAt != nil {
			t := a.QuarantinedAt.AsTime()
			v.QuarantinedAt = &t
		}
	}
	for _, e := range a.Exports {
		v.Exports = append(v.Exports, exportJSON{Name: e.Name, Type: "(" + strings.Join(e.Params, ", ") + ") -> " + strings.Join(e.Results, ", ")})
	}
	return v
}

func newArtifactCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "artifact", Short: "Upload and manage WebAssembly artifacts"}
	var kind, env, name string
	upload := &cobra.Command{
		Use:   "upload FILE",
		Short: "Upload a module through a pre-signed URL and commit it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k := udfhostv1.ArtifactKind_ARTIFACT_KIND_UDF
			switch kind {
			case "udf":
			case "connector":
				k = udfhostv1.ArtifactKind_ARTIFACT_KIND_CONNECTOR
			default:
				return fmt.Errorf("--kind must be udf or connector, not %q", kind)
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if name == "" {
				name = defaultArtifactName(args[0])
			}
			conn, err := g.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			c := udfhostv1.NewArtifactServiceClient(conn)
			ctx := cmd.Context()
			sum := sha256.Sum256(data)
			up, err := c.CreateUploadURL(ctx, &udfhostv1.CreateUploadURLRequest{
				Kind: k, Env: env, Name: name, Size: int64(len(data)), Sha256: hex.EncodeToString(sum[:]),
			})
			if err != nil {
				return err
			}
			if err := put(ctx, up, data); err != nil {
				return err
			}
			art, err := c.CommitUpload(ctx, &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
			if err != nil {
				return err
			}
			return printJSON(artifactView(art))
		},
	}
	upload.Flags().StringVar(&kind, "kind", "udf", "udf or connector")
	upload.Flags().StringVar(&env, "env", "default", "environment")
	upload.Flags().StringVar(&name, "name", "", "display name (default: file name)")

	var listEnv string
	list := &cobra.Command{
		Use: "list", Short: "List artifacts", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withArtifacts(g, func(c udfhostv1.ArtifactServiceClient) error {
				resp, err := c.ListArtifacts(cmd.Context(), &udfhostv1.ListArtifactsRequest{Env: listEnv})
				if err != nil {
					return err
				}
				out := []artifactJSON{}
				for _, a := range resp.Artifacts {
					out = append(out, artifactView(a))
				}
				return printJSON(out)
			})
		},
	}
	list.Flags().StringVar(&listEnv, "env", "", "only this environment")
	get := &cobra.Command{
		Use: "get ID", Short: "Show an artifact", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withArtifacts(g, func(c udfhostv1.ArtifactServiceClient) error {
				a, err := c.GetArtifact(cmd.Context(), &udfhostv1.GetArtifactRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return printJSON(artifactView(a))
			})
		},
	}
	del := &cobra.Command{
		Use: "delete ID", Short: "Delete an artifact no function uses", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withArtifacts(g, func(c udfhostv1.ArtifactServiceClient) error {
				if _, err := c.DeleteArtifact(cmd.Context(), &udfhostv1.DeleteArtifactRequest{Id: args[0]}); err != nil {
					return err
				}
				return printJSON(map[string]string{"deleted": args[0]})
			})
		},
	}
	release := &cobra.Command{
		Use: "release ID", Short: "Re-enable a quarantined artifact's functions", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withArtifacts(g, func(c udfhostv1.ArtifactServiceClient) error {
				a, err := c.ReleaseArtifact(cmd.Context(), &udfhostv1.ReleaseArtifactRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return printJSON(artifactView(a))
			})
		},
	}
	cmd.AddCommand(upload, list, get, del, release)
	return cmd
}

func withArtifacts(g *globals, fn func(udfhostv1.ArtifactServiceClient) error) error {
	conn, err := g.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(udfhostv1.NewArtifactServiceClient(conn))
}

// put sends the bytes to the pre-signed URL with the headers it requires.
func put(ctx context.Context, up *udfhostv1.CreateUploadURLResponse, data []byte) error {
	ctx, cancel := context.WithDeadline(ctx, up.ExpiresAt.AsTime())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, up.Method, up.Url, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	// The body's length is net/http's to send (bytes.Reader: Content-Length);
	// an older server also listed it among the headers, where it is ignored.
	req.ContentLength = int64(len(data))
	for k, v := range up.Headers {
		if !strings.EqualFold(k, "Content-Length") {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("upload refused (%s): %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// defaultArtifactName is a file's base name without its extension, made
// to fit the artifact-name grammar (docs/CLIENTS.md "Names"): characters
// outside it become '-', a leading '.', '_' or '-' is dropped, and it is
// cut to 128 bytes; "" (no name) if nothing is left.
func defaultArtifactName(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	b := []byte(base)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			b[i] = '-'
		}
	}
	name := strings.TrimLeft(string(b), "._-")
	if len(name) > 128 {
		name = name[:128]
	}
	return name
}
