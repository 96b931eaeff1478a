package egress

import (
	"errors"
	"strings"
	"time"
)

// Sentinels the server maps to gRPC codes at its edge. Every error Do
// returns wraps exactly one of them in an *Error naming the connection.
var (
	// ErrDenied: the policy refuses the request (method, the exfiltration
	// rule, an address, a header or a path); the guest's fault, and a
	// violation.
	ErrDenied = errors.New("egress denied")
	// ErrUnavailable: the destination could not be reached or did not
	// answer in time (DNS, refused connection, TLS, timeout).
	ErrUnavailable = errors.New("egress destination unavailable")
	// ErrOverloaded: the broker's concurrency limits are full; retry
	// later (Error.RetryAfter).
	ErrOverloaded = errors.New("egress overloaded")
	// ErrTooLarge: the request or the response is over its byte limit.
	ErrTooLarge = errors.New("egress message too large")
)

// Error is what Do returns: which connection, what happened, and the
// sentinel (errors.Is) that classifies it.
type Error struct {
	Conn string // "env/name"
	Kind error  // one of the sentinels
	Msg  string // the problem in words; never the secret
	// Shared is set on ErrOverloaded when the broker-wide limit, not the
	// pod's own, refused the request: the host is busy, not the guest
	// greedy, so a server fails the batch RESOURCE_EXHAUSTED with the
	// retry hint instead of giving the guest a row error.
	Shared bool
	after  time.Duration
}

func (e *Error) Error() string {
	return "connection " + e.Conn + ": " + e.Msg + " (" + e.Kind.Error() + ")"
}

func (e *Error) Unwrap() error { return e.Kind }

// RetryAfter is when an overloaded caller may try again; 0 otherwise.
func (e *Error) RetryAfter() time.Duration { return e.after }

// scrub removes every occurrence of secret from s: a last guard for
// messages that quote something from outside (a transport error).
func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}
