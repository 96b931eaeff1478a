package egress_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/egress"
	"github.com/udfhost/udfhost/policies"
)

// The server builds one broker at start and, for each guest request,
// passes the connection it looked up in the current policy after checking
// the function's binding.
func ExampleBroker_Do() {
	var log *audit.Log // the server's audit log
	var pol *policies.Policy
	b := egress.New(egress.Config{Audit: log, Limits: egress.Limits{Timeout: 2 * time.Second}})
	defer b.Close()

	conn, err := pol.Connection("analytics", "lookup")
	if err != nil {
		return
	}
	resp, err := b.Do(context.Background(), egress.Request{
		Pod:           "spiffe://acme/pod/p1",
		Function:      "analytics/enrich",
		EnvVisibility: pol.Environments["analytics"].Visibility,
		Conn:          conn,
		Method:        "GET",
		Path:          "/keys/k1",
		Header:        http.Header{"Accept": {"application/json"}},
	})
	var e *egress.Error
	switch {
	case errors.Is(err, egress.ErrOverloaded) && errors.As(err, &e):
		fmt.Println("RESOURCE_EXHAUSTED, retry after", e.RetryAfter())
	case err != nil:
		fmt.Println("per-row error:", err) // names the connection, never the secret
	default:
		fmt.Println(resp.Status, len(resp.Body))
	}
}
