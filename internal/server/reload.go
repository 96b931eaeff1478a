package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/sandbox"
)

// Reloading the policy (SIGHUP, docs/POLICY.md "Reload").
//
// The policy is one immutable *policies.Policy behind an atomic pointer.
// Every call reads it once, first thing (pinPolicyUnary/Stream), and
// authenticates and authorizes under that snapshot only: a reload never
// changes the rules halfway through a call, and in-flight calls finish
// under the policy they started with. An InvokeStream is authenticated
// once, when it opens; each of its batches is authorized under the
// policy current when the batch starts, as the principal of the same
// name (streamBatchContext): a reload that rotates a token keeps the
// streams opened with the old one, while new calls with it are refused.

type policyKey struct{}

// policyOf is the policy the call in ctx runs under: the one it pinned at
// its start, or the current one outside a call.
func (s *Server) policyOf(ctx context.Context) *policies.Policy {
	if p, ok := ctx.Value(policyKey{}).(*policies.Policy); ok {
		return p
	}
	return s.policy.Load()
}

func withPolicy(ctx context.Context, p *policies.Policy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

// pinPolicyUnary and pinPolicyStream run before authentication: the call
// reads the policy here, once.
func (s *Server) pinPolicyUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(withPolicy(ctx, s.policy.Load()), req)
}

func (s *Server) pinPolicyStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, &authedStream{ServerStream: ss, ctx: withPolicy(ss.Context(), s.policy.Load())})
}

// streamBatchContext is the context of the next batch of the open stream
// of ctx: the policy current now, and the stream's principal as that
// policy knows it, by name (its roles may have changed; its credential
// was checked when the stream opened). A principal the current policy no
// longer has, or the data directory's admin once the policy names
// principals, has the batch refused (UNAUTHENTICATED): removing or
// renaming a principal is how an operator stops its open streams.
func (s *Server) streamBatchContext(ctx context.Context) (context.Context, error) {
	cur := s.policy.Load()
	if cur == s.policyOf(ctx) {
		return ctx, nil
	}
	ctx = withPolicy(ctx, cur)
	c := callerOf(ctx)
	if c.principal == nil {
		return ctx, nil
	}
	var now *policies.Principal
	if c.principal == s.admin {
		if len(cur.Principals) == 0 {
			now = s.admin
		}
	} else {
		for _, pr := range cur.Principals {
			if pr.Name == c.name {
				now = pr
				break
			}
		}
	}
	if now == nil {
		return ctx, fmt.Errorf("%w: principal %q is no longer in the policy (reloaded from %s); this stream's batches are refused: open a new stream with a current credential",
			policies.ErrUnauthenticated, c.name, cur.File)
	}
	c.principal = now
	return context.WithValue(ctx, callerKey{}, c), nil
}

// Reload re-reads the policy file (Config.LoadPolicy of the current
// policy's File) and applies it atomically if it is valid and changes
// nothing a running server cannot (checkFixed). Otherwise it is refused:
// logged on one line (FILE:LINE:COL: problem where the problem has a
// place), audited as policy.reload_refused, and the old policy stays. An
// applied one is recorded in the data dir's record of private
// environments, then audited as policy.reloaded with the file's sha256,
// then served; a policy the server could not record or audit is not
// served. Reloads are serialised.
func (s *Server) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.audit == nil {
		return errors.New("reload: the server is not started")
	}
	old := s.policy.Load()
	next, err := s.loadNext(old)
	if err == nil {
		// Before anything is applied: the data dir remembers every private
		// environment ever served, and one may never turn public.
		if err = policies.CheckServed(s.cfg.DataDir, next); err == nil {
			if err = checkFixed(old, next); err == nil {
				err = s.checkClientCAs(next) // tls.go
			}
			if err == nil {
				err = policies.RecordServed(s.cfg.DataDir, next)
			}
		}
	}
	if err != nil {
		return s.reloadRefused(ctx, old, err)
	}
	changes := policyChanges(old, next)
	if err := s.audit.Record(ctx, audit.Event{
		Type: audit.TypePolicyReloaded, Actor: policies.ReservedPrincipal, Resource: "policy/" + next.File, Decision: audit.Allow,
		Details: map[string]string{
			"file": next.File, "sha256": next.FileSHA256, "previous_sha256": old.FileSHA256,
			"summary": next.Summary(), "changes": changes,
		},
	}); err != nil {
		return s.reloadRefused(ctx, old, fmt.Errorf("audit the reload: %w", err))
	}
	s.policy.Store(next)
	s.updatePoolCaps(next, s.memTotal)
	s.log.Info("policy reloaded", "file", next.File, "sha256", next.FileSHA256, "summary", next.Summary(), "changes", changes)
	return nil
}

// loadNext reads the file the current policy came from.
func (s *Server) loadNext(old *policies.Policy) (*policies.Policy, error) {
	if old.File == "" {
		return nil, errors.New("reload: the server runs the embedded default policy (no --policy): there is no file to re-read")
	}
	return s.cfg.LoadPolicy(old.File)
}

// reloadRefused logs and audits a refused reload; it returns err.
func (s *Server) reloadRefused(ctx context.Context, old *policies.Policy, err error) error {
	s.log.Error("policy reload refused; the old policy stays", "err", err)
	if aerr := s.audit.Record(ctx, audit.Event{
		Type: audit.TypePolicyReloadRefused, Actor: policies.ReservedPrincipal, Resource: "policy/" + old.File, Decision: audit.Deny,
		Reason: err.Error(), Details: map[string]string{"file": old.File, "sha256": old.FileSHA256},
	}); aerr != nil {
		s.log.Error("audit a refused policy reload", "err", aerr)
	}
	return err
}

// checkFixed refuses a policy that changes what a running server cannot:
// the org (part of every pod's SPIFFE identity and function record) and
// the networks' listeners (bound at start; their environments, a matter
// of authorization, may change). Restart to change them.
func checkFixed(old, next *policies.Policy) error {
	where := next.File + ": reload refused: "
	if old.Org != next.Org {
		return fmt.Errorf("%sorg: %q would become %q; the org names every pod and function: restart to change it", where, old.Org, next.Org)
	}
	for _, name := range slices.Sorted(maps.Keys(old.Networks)) {
		o, n := old.Networks[name], next.Networks[name]
		switch {
		case n == nil:
			return fmt.Errorf("%snetworks: %q is gone; listeners are bound at start: restart to change listeners", where, name)
		case o.Listen != n.Listen:
			return fmt.Errorf("%snetworks: %q would move from %s to %s; listeners are bound at start: restart to change listeners", where, name, o.Listen, n.Listen)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(next.Networks)) {
		if old.Networks[name] == nil {
			return fmt.Errorf("%snetworks: %q is new; listeners are bound at start: restart to change listeners", where, name)
		}
	}
	return nil
}

// policyChanges summarises what next changes of old, by name only (never
// a credential): "environments +a -b; pools ~x; principals +p ~q".
func policyChanges(old, next *policies.Policy) string {
	var parts []string
	add := func(what string, o, n map[string]string) {
		var d []string
		for _, k := range slices.Sorted(maps.Keys(n)) {
			if ov, ok := o[k]; !ok {
				d = append(d, "+"+k)
			} else if ov != n[k] {
				d = append(d, "~"+k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(o)) {
			if _, ok := n[k]; !ok {
				d = append(d, "-"+k)
			}
		}
		if len(d) > 0 {
			parts = append(parts, what+" "+strings.Join(d, " "))
		}
	}
	envs := func(p *policies.Policy) map[string]string {
		m := map[string]string{}
		for k, e := range p.Environments {
			m[k] = string(e.Visibility)
		}
		return m
	}
	nets := func(p *policies.Policy) map[string]string {
		m := map[string]string{}
		for k, n := range p.Networks {
			m[k] = fmt.Sprint(n.Environments)
		}
		return m
	}
	pools := func(p *policies.Policy) map[string]string {
		m := map[string]string{}
		for k, pl := range p.Pools {
			m[k] = fmt.Sprintf("%+v", *pl)
		}
		return m
	}
	principals := func(p *policies.Policy) map[string]string {
		m := map[string]string{}
		for _, pr := range p.Principals {
			// The credential's hash only tells "changed" from "same"; it is
			// never written out.
			m[pr.Name] = fmt.Sprintf("%x|%s|%v", pr.TokenSHA256, pr.SPIFFEID, pr.Roles)
		}
		return m
	}
	conns := func(p *policies.Policy) map[string]string {
		m := map[string]string{}
		for k, c := range p.Connections {
			// A changed secret shows as "changed" by its hash, never its value.
			sum := sha256.Sum256([]byte(c.Secret.Reveal()))
			m[k] = fmt.Sprintf("%s|%v|%s|%s|%x", c.Destination(), c.Methods, c.Cluster, c.SecretHeader, sum)
		}
		return m
	}
	add("environments", envs(old), envs(next))
	add("networks", nets(old), nets(next))
	add("pools", pools(old), pools(next))
	add("principals", principals(old), principals(next))
	add("connections", conns(old), conns(next))
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// updatePoolCaps derives the pools' caps on live pods from p (PodCaps,
// memTotal bytes of host memory) for the pods started from now on, and
// returns the host-wide cap, which only the start uses.
func (s *Server) updatePoolCaps(p *policies.Policy, memTotal int64) int {
	podBytes := func(pl *policies.Pool) int64 {
		return sandbox.PodLimits(pl.MemoryLimitPages, pl.InstancesPerWorker).MemoryBytes
	}
	host, perPool := p.PodCaps(memTotal, podBytes)
	s.poolCaps.Store(&perPool)
	s.log.Info("pod caps", "host", host, "pools", fmt.Sprint(perPool), "mem_total_mib", memTotal>>20)
	return host
}
