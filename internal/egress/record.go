package egress

import (
	"context"
	"errors"
	"fmt"

	"github.com/udfhost/udfhost/audit"
)

// err builds an *Error of the call's connection, its message scrubbed of
// the secret.
func (c *call) err(kind error, format string, args ...any) *Error {
	return &Error{Conn: c.id, Kind: kind, Msg: scrub(fmt.Sprintf(format, args...), c.secret)}
}

// Refuse audits and returns a refusal its caller decided before the
// broker saw the request (the server's binding checks: no connections, a
// name or position the binding lacks), as the broker records its own:
// an egress.request denial of connection connID ("env/name" as asked),
// an *Error wrapping ErrDenied. The record's reason is the refusal's
// words alone: the resource already names the connection.
func (b *Broker) Refuse(ctx context.Context, req Request, connID, format string, args ...any) error {
	c := &call{req: req, id: connID, details: map[string]string{"function": req.Function, "method": fmt.Sprintf("%.16s", req.Method)}}
	e := c.err(ErrDenied, format, args...)
	_ = b.record(ctx, c, audit.Deny, e.Msg)
	return e
}

// deny audits a refusal and returns it; a refusal that cannot be audited
// is still a refusal.
func (b *Broker) deny(ctx context.Context, c *call, err error) error {
	_ = b.record(ctx, c, audit.Deny, err.Error())
	return err
}

// fail audits a failure (a refusal of an address is a denial) and
// returns it.
func (b *Broker) fail(ctx context.Context, c *call, err error) error {
	d := audit.Error
	if errors.Is(err, ErrDenied) {
		d = audit.Deny
	}
	// The audit record outlives a request context past its deadline.
	_ = b.record(context.WithoutCancel(ctx), c, d, err.Error())
	return err
}

func (b *Broker) record(ctx context.Context, c *call, decision, reason string) error {
	d := make(map[string]string, len(c.details))
	for k, v := range c.details {
		d[k] = scrub(v, c.secret)
	}
	return b.cfg.Audit.Record(ctx, audit.Event{
		Type:      audit.TypeEgressRequest,
		Actor:     "udfhost",
		Pod:       c.req.Pod,
		Resource:  "connection/" + c.id,
		Decision:  decision,
		Reason:    scrub(reason, c.secret),
		RequestID: c.req.RequestID,
		Details:   d,
	})
}
