package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/egress"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/sandbox"
)

// withEgress gives a batch of f its way out: the egress handler of the
// calls made with the returned context, bound to f's connections. A
// connector without connections gets the same handler, which refuses its
// every request ("this function has no connections") so that each is
// audited and counted toward quarantine; any other function gets ctx
// unchanged (a UDF cannot import udfhost_http: the validator refuses it).
//
// The returned batchEgress says, once the call is over, whether the broker
// as a whole was too busy for one of the batch's requests: the batch then
// fails RESOURCE_EXHAUSTED with the broker's retry hint (busy), since its
// rows' errors would be the host's fault, not the data's.
func (is *invokeService) withEgress(ctx context.Context, f *functions.Function, id pods.Identity, pool *policies.Pool) (context.Context, *batchEgress) {
	if is.s.egress == nil || len(f.Connections) == 0 && !is.isConnector(ctx, f) {
		return ctx, nil // most batches: no egress, nothing allocated
	}
	be := &batchEgress{}
	reqID := requestIDOf(ctx)
	h := func(hctx context.Context, req sandbox.EgressRequest) (sandbox.EgressResponse, error) {
		resp, err := is.egressRequest(hctx, f, id, reqID, req)
		if err == nil {
			return sandbox.EgressResponse{Status: resp.Status, Header: resp.Header, Body: resp.Body}, nil
		}
		var ee *egress.Error
		switch {
		case errors.Is(err, egress.ErrOverloaded):
			if errors.As(err, &ee) && ee.Shared {
				be.overloaded(ee)
			}
			return sandbox.EgressResponse{}, fmt.Errorf("%w: %v", sandbox.ErrOverloaded, err)
		case errors.Is(err, egress.ErrDenied):
			// A guest that keeps asking for what it may not have is
			// probing: refusals count toward quarantine like the other
			// violations.
			is.egressDenied(context.WithoutCancel(hctx), f, id, pool, err)
			return sandbox.EgressResponse{}, fmt.Errorf("%w: %v", sandbox.ErrEgressDenied, err)
		}
		return sandbox.EgressResponse{}, fmt.Errorf("%w: %v", sandbox.ErrEgressFailed, err)
	}
	// No binding for the sandbox to resolve "#i" with: positions reach
	// egressRequest, which resolves them, so that a position the binding
	// lacks is refused there, audited and counted like any other refusal.
	return sandbox.WithEgress(ctx, h), be
}

// batchEgress is what a batch's egress requests leave for the batch.
type batchEgress struct {
	mu   sync.Mutex
	busy *egress.Error // the first broker-wide refusal
}

func (be *batchEgress) overloaded(e *egress.Error) {
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.busy == nil {
		be.busy = e
	}
}

// err is the batch's RESOURCE_EXHAUSTED when the broker was full for one
// of its requests, else nil (also for a batch without egress: nil be).
func (be *batchEgress) err() error {
	if be == nil {
		return nil
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.busy == nil {
		return nil
	}
	return &overloadError{err: fmt.Errorf("%w: %v", errBusy, be.busy), after: be.busy.RetryAfter()}
}

// egressRequest checks one request of f against its binding and the
// policy current now (a reload that removed the connection, or made the
// environment private, applies to the next request), then hands it to
// the broker, which checks the rest and audits it.
func (is *invokeService) egressRequest(ctx context.Context, f *functions.Function, id pods.Identity, reqID string, req sandbox.EgressRequest) (*egress.Response, error) {
	s := is.s
	pol := s.policy.Load()
	deny := func(format string, args ...any) error {
		return s.egress.Refuse(ctx, egress.Request{Pod: id.SPIFFEID(), Function: f.Env + "/" + f.Name, RequestID: reqID, Method: req.Method},
			f.Env+"/"+req.Conn, format, args...)
	}
	if len(f.Connections) == 0 {
		return nil, deny("this function has no connections")
	}
	if n, ok := strings.CutPrefix(req.Conn, "#"); ok {
		i, err := strconv.Atoi(n)
		if err != nil || i < 0 || i >= len(f.Connections) {
			return nil, deny("the function has %d connection(s); there is no %s", len(f.Connections), req.Conn)
		}
		req.Conn = f.Connections[i]
	}
	if !slices.Contains(f.Connections, req.Conn) {
		return nil, deny("function %s is not bound to connection %q (it has %v)", f.Name, req.Conn, f.Connections)
	}
	conn, err := pol.Connection(f.Env, req.Conn)
	if err != nil {
		return nil, deny("connection %q is no longer in the policy", req.Conn)
	}
	env, err := pol.Env(f.Env)
	if err != nil {
		return nil, deny("environment %q is no longer in the policy", f.Env)
	}
	lim := egress.Limits{}
	if pl, err := pol.Pool(f.Env, f.Pool); err == nil {
		lim = egress.Limits{
			Timeout: pl.EgressTimeout, MaxRequestBytes: pl.EgressMaxRequestBytes,
			MaxResponseBytes: pl.EgressMaxResponseBytes, PerPodConcurrency: pl.EgressRequestsPerPod,
		}
	}
	var addr netip.AddrPort
	if req.Addr != "" {
		if addr, err = netip.ParseAddrPort(req.Addr); err != nil {
			return nil, deny("address %q is not ip:port", req.Addr)
		}
	}
	return s.egress.Do(ctx, egress.Request{
		Pod: id.SPIFFEID(), Function: f.Env + "/" + f.Name, RequestID: reqID,
		EnvVisibility: env.Visibility, Conn: conn,
		Method: req.Method, Path: req.Path, Header: req.Header, Body: req.Body, Addr: addr,
		Limits: lim,
	})
}

// egressDenied counts a refused egress request toward quarantining f's
// artifact; the broker (or egressRequest) has audited the refusal itself.
func (is *invokeService) egressDenied(ctx context.Context, f *functions.Function, id pods.Identity, pool *policies.Pool, err error) {
	if aerr := is.countViolation(ctx, f, id.SPIFFEID(), pool, "egress refused: "+err.Error()); aerr != nil {
		is.s.log.Warn("egress refusal not counted", "function", f.Name, "err", aerr)
	}
}

// isConnector reports whether f's artifact is a connector, from a cache by
// artifact id (a function's artifact cannot change kind, nor be deleted
// while the function exists), so a batch pays a map lookup, not a read of
// the artifact's metadata. An artifact that cannot be read counts as not
// a connector: its function keeps the sandbox's own refusal.
func (is *invokeService) isConnector(ctx context.Context, f *functions.Function) bool {
	if v, ok := is.connectors.Load(f.ArtifactID); ok {
		return v.(bool)
	}
	art, err := is.s.store.Get(ctx, f.ArtifactID)
	if err != nil {
		return false
	}
	yes := art.Kind == artifacts.KindConnector
	is.connectors.Store(f.ArtifactID, yes)
	return yes
}
