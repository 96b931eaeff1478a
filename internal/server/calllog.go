package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/udfhost/udfhost/audit"
)

// callLog is the audit log as the server writes it: a record written for
// a call carries the call's request id (the one place that stamps it, so
// no record a handler or the artifact store writes can miss it), and
// whether the last write failed is kept for the invocations
// (invocationsAudited).
type callLog struct {
	*audit.Log
	// failing is the error of the last write that failed, nil once one
	// succeeded since.
	failing atomic.Pointer[error]
	// probe lets one invocation at a time try writing while failing.
	probe sync.Mutex
}

// openAudit opens the server's audit log.
func openAudit(path string, opts audit.Options) (*callLog, error) {
	l, err := audit.OpenWithOptions(path, opts)
	if err != nil {
		return nil, err
	}
	return &callLog{Log: l}, nil
}

// Record is audit.Log.Record with the request id of the call in ctx,
// unless e names one already.
func (l *callLog) Record(ctx context.Context, e audit.Event) error {
	if e.RequestID == "" {
		e.RequestID = requestIDOf(ctx)
	}
	err := l.Log.Record(ctx, e)
	switch {
	case err == nil:
		l.failing.Store(nil)
	case errors.Is(err, audit.ErrBroken):
		l.failing.Store(&err)
	}
	return err
}
