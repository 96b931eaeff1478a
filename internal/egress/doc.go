// Package egress is the broker through which a bound function reaches a
// network: the only path out of the sandbox. It runs in the host process,
// never in the worker, which keeps no network of its own; the sandbox
// forwards a guest's request (the udfhost_http import module) and the
// server hands it to Broker.Do with the connection it looked up.
//
// What it trusts: the policy (a policies.Connection is a grant an operator
// wrote) and the caller's binding (that the function is bound to the
// connection, in an environment of the visibility given). What it does not
// trust: every field a guest chose — Method, Path, Header, Body and Addr —
// and every answer of DNS. For each request it re-checks the grant and the
// exfiltration rule, resolves the destination itself, checks every
// address, connects to exactly the address it checked, sets Host, TLS
// server name and the secret header itself, never follows a redirect,
// bounds bytes, time and concurrency, and audits the request before it
// sends it (docs/CONNECTORS.md, "The broker's checks" and "Limits").
//
// The connection's secret is revealed only into the outgoing request's
// header; no error, audit record or response the guest sees carries it.
package egress
