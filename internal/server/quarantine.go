package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/sandbox"
)

// errQuarantined marks calls refused because the function's artifact is
// quarantined.
var errQuarantined = errors.New("artifact is quarantined")

// quarantinedError refuses a call to a quarantined artifact's function and
// tells the caller why and who can lift it.
type quarantinedError struct {
	digest, artifactID string
	q                  *artifacts.Quarantine
}

func (e *quarantinedError) Error() string {
	return fmt.Sprintf("artifact %s is quarantined after %d sandbox violations (last: %s); an admin can re-enable it with \"udfhost artifact release %s\"",
		shortDigest(e.digest), e.q.Violations, e.q.Reason, e.artifactID)
}

func (e *quarantinedError) Unwrap() error { return errQuarantined }

func shortDigest(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) > 12 {
		return "sha256:" + h[:12] + "…"
	}
	return d
}

// violation audits a batch the guest made fail, with the native layer that
// stopped it if any, and counts it toward quarantining the artifact. An
// error means the audit log refused: the call fails closed.
func (is *invokeService) violation(ctx context.Context, f *functions.Function, id pods.Identity, pool *policies.Pool, rows uint32, err error) error {
	s := is.s
	pod := id.SPIFFEID()
	details := map[string]string{
		"class": violationClass(err), "function": f.Name, "digest": f.Digest,
		"rows": strconv.FormatUint(uint64(rows), 10),
	}
	var ce *sandbox.CallError
	if errors.As(err, &ce) && ce.Violation != nil {
		v := ce.Violation
		details["layer"] = v.Layer
		if v.Syscall != "" {
			details["syscall"] = v.Syscall
		}
		if v.Limit != "" {
			details["limit"] = v.Limit
		}
		if v.Detail != "" {
			details["detail"] = v.Detail
		}
	}
	s.log.Warn("sandbox violation", "pod", pod, "function", f.Name, "err", err)
	if aerr := s.audit.Record(ctx, audit.Event{
		Type: audit.TypeSandboxViolation, Actor: "udfhost", Pod: pod,
		Resource: "function/" + f.Env + "/" + f.Name, Decision: audit.Deny, Reason: err.Error(), Details: details,
	}); aerr != nil {
		return aerr
	}
	if !quarantinable(err) {
		return nil
	}
	return is.countViolation(ctx, f, pod, pool, err.Error())
}

// countViolation counts one violation of f's artifact toward its
// quarantine (the pool's quarantine_after within quarantine_window) and
// audits the quarantine when this one tips it. An error means the audit
// log refused.
func (is *invokeService) countViolation(ctx context.Context, f *functions.Function, pod string, pool *policies.Pool, reason string) error {
	s := is.s
	// The quarantine must happen even if the caller has gone.
	ctx = context.WithoutCancel(ctx)
	q, qerr := is.quarantine.violation(ctx, s.store, f.Digest, pool, reason)
	if q == nil {
		return nil
	}
	s.log.Warn("artifact quarantined", "digest", f.Digest, "artifact", f.ArtifactID, "violations", q.Violations, "reason", q.Reason, "err", qerr)
	e := audit.Event{
		Type: audit.TypeArtifactQuarantined, Actor: "udfhost", Pod: pod, Resource: "artifact/" + f.ArtifactID,
		Decision: audit.Deny, Reason: q.Reason,
		Details: map[string]string{
			"digest": f.Digest, "violations": strconv.Itoa(q.Violations),
			"window": pool.QuarantineWindow.String(), "function": f.Env + "/" + f.Name,
		},
	}
	if qerr != nil {
		// Calls are refused until a restart, which would forget it.
		e.Decision, e.Reason = audit.Error, q.Reason+"; not persisted: "+qerr.Error()
	}
	return s.audit.Record(ctx, e)
}

// quarantinable reports whether err counts toward quarantine: the guest
// overran its deadline, got its worker killed, or answered garbage. Traps
// and failed batches do not: ordinary user data can cause them.
func quarantinable(err error) bool {
	var ce *sandbox.CallError
	if errors.As(err, &ce) && ce.Violation != nil {
		return true
	}
	return errors.Is(err, sandbox.ErrTimeout) || errors.Is(err, sandbox.ErrWorkerDied) || errors.Is(err, sandbox.ErrBadOutput)
}

// quarantineStore is what the quarantiner needs of the artifact store.
type quarantineStore interface {
	Quarantined(digest string) *artifacts.Quarantine
	Quarantine(ctx context.Context, digest string, q artifacts.Quarantine) ([]*artifacts.Artifact, error)
}

// quarantiner counts sandbox violations per artifact digest and
// quarantines an artifact whose count reaches its pool's threshold within
// the pool's window. Only failed calls reach it; the zero value is ready.
type quarantiner struct {
	now func() time.Time // nil: time.Now
	// mu also spans quarantining, so concurrent violations quarantine an
	// artifact once.
	mu     sync.Mutex
	recent map[string][]time.Time // digest -> violations in the window, oldest first
}

// violation counts one violation by the artifact with digest (reason says
// what happened) and, if that reaches pool.QuarantineAfter, quarantines it
// in store and returns the quarantine. A non-nil quarantine with an error
// means calls are refused but writing it down failed.
func (qr *quarantiner) violation(ctx context.Context, store quarantineStore, digest string, pool *policies.Pool, reason string) (*artifacts.Quarantine, error) {
	if pool.QuarantineAfter <= 0 {
		return nil, nil
	}
	qr.mu.Lock()
	defer qr.mu.Unlock()
	if store.Quarantined(digest) != nil {
		// Batches in flight when it was quarantined: counting them would
		// carry over to after a release.
		return nil, nil
	}
	now := time.Now()
	if qr.now != nil {
		now = qr.now()
	}
	n, trip := qr.add(digest, now, pool.QuarantineAfter, pool.QuarantineWindow)
	if !trip {
		return nil, nil
	}
	q := artifacts.Quarantine{Since: now, Reason: reason, Violations: n}
	_, err := store.Quarantine(ctx, digest, q)
	return &q, err
}

// add records a violation by digest at now and returns how many fell within
// window (0: no limit) and whether that reached after; if so the count
// starts again. Called with mu held.
func (qr *quarantiner) add(digest string, now time.Time, after int, window time.Duration) (int, bool) {
	if qr.recent == nil {
		qr.recent = map[string][]time.Time{}
	}
	times := qr.recent[digest]
	for window > 0 && len(times) > 0 && now.Sub(times[0]) > window {
		times = times[1:]
	}
	times = append(times, now)
	if len(times) > after {
		times = times[len(times)-after:] // after shrank (another pool's policy)
	}
	if len(times) >= after {
		delete(qr.recent, digest)
		return len(times), true
	}
	qr.recent[digest] = times
	return len(times), false
}
