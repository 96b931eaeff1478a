package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/abi/abipb"
	"github.com/udfhost/udfhost/internal/names"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

type functionService struct {
	udfhostv1.UnimplementedFunctionServiceServer
	s *Server
}

// CreateFunction checks the binding, then starts (or reuses) the pod's
// worker before storing it: the module is compiled and instantiated under
// the pool's limits now, so a module that cannot run there is refused here
// and the first invoke finds a warm worker.
//
// Order matters: every name is checked, and the whole record built and
// its name reserved, before a worker starts or anything is recorded as
// allowed; the artifact is looked up again under its digest's lock (a
// DeleteArtifact may have run while this call waited for it); and a
// failure after the worker started stops it unless another function
// needs it.
func (fs *functionService) CreateFunction(ctx context.Context, req *udfhostv1.CreateFunctionRequest) (*udfhostv1.FunctionInfo, error) {
	s := fs.s
	env := envOrDefault(req.Env)
	poolName := req.Pool
	if poolName == "" {
		poolName = "default"
	}
	if err := s.checkNames(ctx, nameArg{names.Function, req.Name}, nameArg{names.Env, env}, nameArg{names.Pool, poolName},
		nameArg{names.ArtifactID, req.ArtifactId}, nameArg{names.Export, req.Export}); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, envRef(env), ""); err != nil {
		return nil, err
	}
	if err := checkSignature(req.Signature); err != nil {
		s.refused(ctx, "signature", err)
		return nil, err
	}
	if req.Signature == "" {
		return nil, fmt.Errorf("%w: a signature is required, e.g. \"(BIGINT, BIGINT) -> BIGINT\"", errInvalid)
	}
	envRec, err := s.policyOf(ctx).Env(env)
	if err != nil {
		return nil, err
	}
	if _, err := s.policyOf(ctx).Pool(env, poolName); err != nil {
		return nil, err
	}
	art, err := s.store.Get(ctx, req.ArtifactId)
	if err != nil {
		return nil, err
	}
	// The function runs the artifact's code: the caller must be able to
	// read it (and, if it may not see it at all, learns nothing of it,
	// not even its environment).
	if err := s.authorizeAs(ctx, policies.ArtifactRead, artifactRef(art.Env, art.ID), visibilityOf(art.Visibility)); err != nil {
		return nil, err
	}
	if art.Env != env {
		return nil, fmt.Errorf("%w: artifact %s belongs to environment %q, not %q", errInvalid, art.ID, art.Env, env)
	}
	args, result, err := functions.ParseSignature(req.Signature)
	if err != nil {
		return nil, err
	}
	want, err := abiFromProto(req.Abi)
	if err != nil {
		return nil, err
	}
	abi, err := functions.ChooseABI(art, req.Export, args, result, want)
	if err != nil {
		return nil, err
	}
	conns, err := checkConnections(s.policyOf(ctx), art, env, req.Connections)
	if err != nil {
		return nil, err
	}
	f := &functions.Function{
		Name: req.Name, Org: s.policyOf(ctx).Org, Env: env, Pool: poolName, ArtifactID: art.ID, Digest: art.Digest,
		Export: req.Export, Args: args, Result: result, ABI: abi, CreatedAt: time.Now().UTC(),
		Visibility: visibilityOf(envRec.Visibility), Connections: conns,
	}
	defer s.digestLocks.lock(art.Digest)()
	// Deleted while this call waited for the lock: binding to it now
	// would leave a function whose artifact is gone.
	if again, err := s.store.Get(ctx, art.ID); err != nil {
		return nil, fmt.Errorf("artifact %s was deleted while the function was being created: %w", art.ID, err)
	} else if again.Digest != art.Digest {
		return nil, fmt.Errorf("%w: artifact %s changed while the function was being created", errInvalid, art.ID)
	}
	commit, cancel, err := s.fns.Reserve(f)
	if err != nil {
		return nil, err
	}
	id := s.identity(f)
	// undo frees the name and stops a worker no function needs.
	undo := func() {
		cancel()
		s.stopIfUnused(ctx, id)
	}
	w, err := s.pods.Get(ctx, id)
	if err != nil {
		undo()
		return nil, fmt.Errorf("start worker for function %s: %w", f.Name, err)
	}
	spec := specOf(f)
	if err := w.Prepare(ctx, &spec); err != nil {
		undo()
		return nil, fmt.Errorf("%w: prepare function %s: %v", errInvalid, f.Name, err)
	}
	e := callerOf(ctx).stamp(audit.Event{
		Type: audit.TypeFunctionCreated, Pod: id.SPIFFEID(),
		Resource: "function/" + env + "/" + f.Name, Decision: audit.Allow,
		Details: map[string]string{"artifact": art.ID, "digest": art.Digest, "export": f.Export, "signature": f.Signature()},
	})
	if len(f.Connections) > 0 {
		e.Details["connections"] = strings.Join(f.Connections, ",")
	}
	if err := s.audit.Record(ctx, e); err != nil {
		undo()
		return nil, err
	}
	if err := commit(ctx); err != nil {
		e.Decision, e.Reason = audit.Error, "creation failed after it was recorded; the function does not exist: "+err.Error()
		s.audit.Record(context.WithoutCancel(ctx), e)
		s.stopIfUnused(ctx, id)
		return nil, err
	}
	return s.functionProto(ctx, f), nil
}

// stopIfUnused stops the pod id unless a function is bound to it. Called
// with its digest's lock held.
func (s *Server) stopIfUnused(ctx context.Context, id pods.Identity) {
	for _, other := range s.fns.List("") {
		if s.identity(other) == id {
			return
		}
	}
	s.pods.Stop(context.WithoutCancel(ctx), id)
}

func (fs *functionService) GetFunction(ctx context.Context, req *udfhostv1.GetFunctionRequest) (*udfhostv1.FunctionInfo, error) {
	f, err := fs.s.lookupFunction(ctx, req.Env, req.Name)
	if err != nil {
		return nil, err
	}
	return fs.s.functionProto(ctx, f), nil
}

func (fs *functionService) ListFunctions(ctx context.Context, req *udfhostv1.ListFunctionsRequest) (*udfhostv1.ListFunctionsResponse, error) {
	s := fs.s
	if req.Env != "" {
		if err := s.checkNames(ctx, nameArg{names.Env, req.Env}); err != nil {
			return nil, err
		}
		if err := s.authorize(ctx, envRef(req.Env), ""); err != nil {
			return nil, err
		}
		if _, err := s.policyOf(ctx).Env(req.Env); err != nil {
			return nil, err
		}
	}
	shown := s.listFilter(ctx)
	resp := &udfhostv1.ListFunctionsResponse{}
	for _, f := range s.fns.List(req.Env) {
		if shown(f.Env, f.Visibility) {
			resp.Functions = append(resp.Functions, s.functionProto(ctx, f))
		}
	}
	return resp, nil
}

// DeleteFunction removes the binding and stops the pod's worker once no
// function needs it.
func (fs *functionService) DeleteFunction(ctx context.Context, req *udfhostv1.DeleteFunctionRequest) (*udfhostv1.DeleteFunctionResponse, error) {
	s := fs.s
	f, err := s.lookupFunction(ctx, req.Env, req.Name)
	if err != nil {
		return nil, err
	}
	// req.Name may be a three-part name: f has the names it resolved to.
	env, name := f.Env, f.Name
	defer s.digestLocks.lock(f.Digest)()
	if f, err = s.fns.Get(env, name); err != nil {
		return nil, err // deleted while we waited
	}
	id := s.identity(f)
	e := callerOf(ctx).stamp(audit.Event{
		Type: audit.TypeFunctionDeleted, Pod: id.SPIFFEID(),
		Resource: "function/" + env + "/" + f.Name, Decision: audit.Allow,
	})
	if err := s.audit.Record(ctx, e); err != nil {
		return nil, err
	}
	if _, err := s.fns.Delete(ctx, env, name); err != nil {
		// A shared store: another host replaced the function (ABORTED,
		// it is still here) or deleted it first (NOT_FOUND, gone here
		// too, so its pod stops as after a delete), or the store failed.
		e.Decision, e.Reason = audit.Error, "deletion failed after it was recorded: "+err.Error()
		s.audit.Record(context.WithoutCancel(ctx), e)
		if errors.Is(err, functions.ErrNotFound) {
			s.stopIfUnused(ctx, id)
		}
		return nil, err
	}
	s.stopIfUnused(ctx, id)
	return &udfhostv1.DeleteFunctionResponse{}, nil
}

// functionProto describes f with its pool's limits in the call's policy.
func (s *Server) functionProto(ctx context.Context, f *functions.Function) *udfhostv1.FunctionInfo {
	info := &udfhostv1.FunctionInfo{
		Name: f.Name, ArtifactId: f.ArtifactID, Digest: f.Digest, Export: f.Export,
		Signature: f.Signature(), ArgTypes: abipb.ToTypes(f.Args), ResultType: udfhostv1.SqlType(f.Result),
		Env: f.Env, Pool: f.Pool, Abi: abiProto(f.ABI), SpiffeId: s.identity(f).SPIFFEID(),
		CreatedAt: timestamppb.New(f.CreatedAt), Connections: f.Connections,
	}
	pol := s.policyOf(ctx)
	if pool, err := pol.Pool(f.Env, f.Pool); err == nil {
		info.Limits = limitsProto(pool, pol.Edge.WithDefaults())
	}
	return info
}

// limitsProto is what one call to a function of pool may carry and take,
// as the server enforces it (policies and the edge constants).
func limitsProto(pool *policies.Pool, edge policies.Edge) *udfhostv1.Limits {
	return &udfhostv1.Limits{
		MaxBatchRows:           uint32(pool.MaxBatchRows),
		MaxBatchBytes:          uint64(pool.MaxBatchBytes),
		MaxMessageBytes:        policies.MaxMessageBytes,
		BatchDeadlineMs:        uint32(pool.BatchDeadline.Milliseconds()),
		MemoryBytesPerInstance: uint64(pool.MemoryLimitPages) * 65536,
		InstancesPerWorker:     uint32(pool.InstancesPerWorker),
		QueuePerWorker:         uint32(pool.QueuePerWorker),
		FirstRequestTimeoutMs:  uint32(edge.RequestTimeout.Milliseconds()),
		StreamIdleTimeoutMs:    uint32(edge.StreamIdleTimeout.Milliseconds()),
		StreamWindow:           policies.StreamWindow,
	}
}
