package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/jsonrows"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

func newInvokeCmd(g *globals) *cobra.Command {
	var name, env string
	var batchRows int
	cmd := &cobra.Command{
		Use:   "invoke --function NAME",
		Short: "Call a function on JSON rows from stdin (one JSON array of arguments per line)",
		Long: "Reads JSON lines from stdin, each an array of arguments (null allowed), and writes one JSON\n" +
			"line per input row: the result, null, or {\"error\": \"...\"}. Rows are sent in batches over one stream.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := g.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx := cmd.Context()
			fn, err := udfhostv1.NewFunctionServiceClient(conn).GetFunction(ctx, &udfhostv1.GetFunctionRequest{Name: name, Env: env})
			if err != nil {
				return err
			}
			// One unary call per batch: a person typing rows may pause for
			// as long as they like, which a stream's idle limit would not
			// allow; a pipe still gets full batches.
			client := udfhostv1.NewInvokeServiceClient(conn)
			out := bufio.NewWriter(os.Stdout)
			defer out.Flush()
			enc := json.NewEncoder(out)
			b := jsonrows.NewBuilder(fn.ArgTypes)
			failed := 0
			var seq uint64
			err = readBatches(os.Stdin, batchRows, func(lines [][]byte) error {
				b.Reset()
				lineErr := make([]error, len(lines))
				for i, l := range lines {
					lineErr[i] = b.AddLine(l)
				}
				var values []any
				var batchErr string
				if b.Rows() > 0 {
					seq++
					resp, err := client.Invoke(ctx, &udfhostv1.InvokeRequest{Function: name, Env: env, Batch: b.Batch(), Seq: seq})
					switch status.Code(err) {
					case codes.OK:
						values = jsonrows.Values(resp)
					case codes.Unavailable, codes.Unauthenticated, codes.PermissionDenied, codes.Canceled, codes.NotFound:
						return err // not this batch's fault: stop
					default:
						batchErr = status.Convert(err).Message()
						failed++
					}
				}
				next := 0
				for i := range lines {
					var v any
					switch {
					case lineErr[i] != nil:
						v = jsonrows.RowError{Error: fmt.Sprintf("bad input row: %v", lineErr[i])}
					case batchErr != "":
						v = jsonrows.RowError{Error: batchErr}
					default:
						v = values[next]
					}
					if lineErr[i] == nil {
						next++
					}
					if err := enc.Encode(v); err != nil {
						return err
					}
				}
				return out.Flush()
			})
			if err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d batch(es) failed; their rows carry the error", failed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "function", "", "function name, or the three-part name ORG.ENV.FUNCTION (required)")
	cmd.Flags().StringVar(&env, "env", "", envRefHelp)
	cmd.Flags().IntVar(&batchRows, "batch", 1024, "maximum rows per batch")
	cmd.MarkFlagRequired("function")
	return cmd
}

// envRefHelp is the help of --env where --function (or NAME) may be a
// three-part name. Its default is empty, which the server reads as
// "default" for a plain name and as the middle part of a three-part one.
const envRefHelp = `environment (default "default"; with ORG.ENV.FUNCTION, ENV)`

// readBatches calls fn with up to max lines at a time: as many as are
// already available, so an interactive user gets an answer per line and a
// pipe gets full batches. Blank lines are skipped.
func readBatches(r io.Reader, max int, fn func([][]byte) error) error {
	if max < 1 {
		max = 1
	}
	lines := make(chan []byte, max)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			if len(sc.Bytes()) == 0 {
				continue
			}
			lines <- append([]byte(nil), sc.Bytes()...)
		}
		readErr <- sc.Err()
		close(lines)
	}()
	for {
		first, ok := <-lines
		if !ok {
			return <-readErr
		}
		batch := [][]byte{first}
	drain:
		for len(batch) < max {
			select {
			case l, ok := <-lines:
				if !ok {
					break drain
				}
				batch = append(batch, l)
			default:
				break drain
			}
		}
		if err := fn(batch); err != nil {
			return err
		}
	}
}
