package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// Limits of one ReadAudit call: a client reads more by calling again
// with since_seq one past the last seq it got.
const (
	defaultAuditLimit = 1000
	maxAuditLimit     = 10000
)

// auditService streams the audit log to admins and auditors.
type auditService struct {
	udfhostv1.UnimplementedAuditServiceServer
	s *Server
	// proofSrc answers GetCheckpoint and Prove; nil: the server's audit
	// log (proofs).
	proofSrc proofSource
}

// ReadAudit streams the records the caller may read (policies.AuditRead,
// rpcActions) from since_seq on, reading the log file one line at a time.
//
// Each record belongs to one environment (recordEnv) or to the whole
// organisation. With an env filter the caller needs AuditRead in that
// environment (an auditor of analytics reads analytics' records; payments
// is NOT_FOUND to it exactly as a missing environment, and that denial is
// audited). Without one it gets the records of every environment it may
// AuditRead, and the organisation-wide records only when it may AuditRead
// the whole organisation (Authorize with Env "": "*" admin or auditor on
// a network that reaches every environment); a caller that may do
// neither is refused with PERMISSION_DENIED, audited.
func (as *auditService) ReadAudit(req *udfhostv1.ReadAuditRequest, stream udfhostv1.AuditService_ReadAuditServer) error {
	ctx := stream.Context()
	show, err := as.filter(ctx, req.Env)
	if err != nil {
		return err
	}
	limit := int(req.Limit)
	switch {
	case limit == 0:
		limit = defaultAuditLimit
	case limit > maxAuditLimit:
		limit = maxAuditLimit
	}
	// Only what was acknowledged when the call began: not a record
	// being written now, which a failed write could roll back.
	upto, sent := as.s.audit.DurableSeq(), 0
	return audit.Read(as.s.audit.Path(), req.SinceSeq, func(r audit.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.Seq > upto {
			return audit.ErrStop
		}
		if req.Type != "" && r.Type != req.Type {
			return nil
		}
		if !show(recordEnv(r)) {
			return nil
		}
		if err := stream.Send(recordProto(r)); err != nil {
			return err
		}
		if sent++; sent >= limit {
			return audit.ErrStop
		}
		return nil
	})
}

// filter authorizes the call and returns which records' environments
// ("" for organisation-wide ones) it shows.
func (as *auditService) filter(ctx context.Context, env string) (func(string) bool, error) {
	s := as.s
	if env != "" {
		if err := s.authorizeAs(ctx, policies.AuditRead, envRef(env), ""); err != nil {
			return nil, err
		}
		return func(e string) bool { return e == env }, nil
	}
	c, pol := callerOf(ctx), s.policyOf(ctx)
	may := func(e string) bool {
		return pol.Authorize(policies.Access{Principal: c.principal, Network: c.network, Env: e, Action: policies.AuditRead}) == nil
	}
	org := may("")
	envs := map[string]bool{}
	for name := range pol.Environments {
		envs[name] = may(name)
	}
	if !org && !anyTrue(envs) {
		// Refused and audited as an organisation-wide read: the caller
		// may read no environment's records either.
		if err := s.authorizeAs(ctx, policies.AuditRead, envRef(""), ""); err != nil {
			return nil, err
		}
		return nil, errors.New("read the audit log: authorization is inconsistent") // unreachable: may("") was false
	}
	return func(e string) bool {
		if ok, known := envs[e]; known {
			return ok
		}
		// Organisation-wide, or an environment the policy no longer has.
		return org
	}, nil
}

func anyTrue(m map[string]bool) bool {
	for _, v := range m {
		if v {
			return true
		}
	}
	return false
}

// recordEnv is the environment a record is about, "" for one about the
// organisation: details.env where the record has it (artifacts, uploads,
// denials), else the env of its resource (env/<env>,
// function/<env>/<name>: functions, invocations, sandbox violations).
// Records of the server itself (server.*, worker.*, sandbox.layers,
// policy.*, audit.repaired), auth failures, policy.denied and the
// quarantine records (artifact/<id>: a quarantine is of a digest, which
// several environments' artifacts may share) are organisation-wide.
// docs/POLICY.md has the table.
func recordEnv(r audit.Record) string {
	if e := r.Details["env"]; e != "" {
		return e
	}
	if e, ok := strings.CutPrefix(r.Resource, "env/"); ok {
		return e
	}
	if rest, ok := strings.CutPrefix(r.Resource, "function/"); ok {
		e, _, _ := strings.Cut(rest, "/")
		return e
	}
	return ""
}

func recordProto(r audit.Record) *udfhostv1.AuditRecord {
	return &udfhostv1.AuditRecord{
		Seq: r.Seq, Time: r.Time.UTC().Format(time.RFC3339Nano), Type: r.Type, Actor: r.Actor, SpiffeId: r.SPIFFEID,
		Network: r.Network, Pod: r.Pod, Resource: r.Resource, Decision: r.Decision, Reason: r.Reason,
		RequestId: r.RequestID, Host: r.Host, Details: r.Details, Prev: r.Prev, Hash: r.Hash,
	}
}
