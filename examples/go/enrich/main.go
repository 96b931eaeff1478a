// Command enrich is a udfhost connector: two exports that reach an HTTP
// service through the first connection the function is bound with
// (`udfhost function create … --connection NAME`), by position, so the
// code does not depend on what the operator named it. The guest has no
// network of its own: every request goes through the host's egress broker
// (docs/CONNECTORS.md), which checks it against the connection's grant
// and adds the connection's secret, which the guest never sees.
//
//   - lookup(VARCHAR) -> VARCHAR sends GET <destination>/<key> and returns
//     the response body; a status outside 2xx is that row's error, naming
//     the status.
//   - publish(VARCHAR, VARCHAR) -> VARCHAR sends POST <destination>/<key>
//     with the second argument as the body and returns the response's
//     status code as text.
//
// A refused or failed request (no connection, a method the grant does not
// allow, the destination down) is that row's error, with the host's
// explanation.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o enrich.wasm ./examples/go/enrich
package main

import (
	"errors"
	"net/url"
	"strconv"

	"github.com/udfhost/udfhost/guest"
)

// conn is the function's first connection.
var conn = guest.Connection(0)

//go:wasmexport lookup
func lookup(ptr, n uint32) uint64 {
	return guest.MapString(ptr, n, func(key string) (string, error) {
		status, body, err := guest.HTTP(conn, "GET", keyPath(key), nil)
		if err != nil {
			return "", errors.New("lookup " + strconv.Quote(key) + ": " + err.Error())
		}
		if status < 200 || status > 299 {
			return "", errors.New("lookup " + strconv.Quote(key) + ": status " + strconv.Itoa(status))
		}
		return string(body), nil
	})
}

//go:wasmexport publish
func publish(ptr, n uint32) uint64 {
	return guest.CallRows(ptr, n, guest.Varchar, func(in *guest.Batch, row int, out *guest.Result) error {
		if err := in.CheckArgs(guest.Varchar, guest.Varchar); err != nil {
			return err
		}
		key, value := in.Col(0).String(row), in.Col(1).String(row)
		status, _, err := guest.HTTP(conn, "POST", keyPath(key), []byte(value))
		if err != nil {
			return errors.New("publish " + strconv.Quote(key) + ": " + err.Error())
		}
		out.SetString(row, strconv.Itoa(status))
		return nil
	})
}

// keyPath is the request path of key: one escaped path segment, so a key
// cannot climb out of the destination's path ("../admin" stays a key).
func keyPath(key string) string { return "/" + url.PathEscape(key) }

func main() {}
