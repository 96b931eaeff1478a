package server

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
	"github.com/udfhost/udfhost/sandbox"
)

type functionService struct {
	udfhostv1.UnimplementedFunctionServiceServer
	s *Server
}

// CreateFunction checks the binding, then starts (or reuses) the pod's
// worker before storing it: the module is compiled and instantiated under
// the pool's limits now, so a module that cannot run there is refused here
// and the first invoke finds a warm worker.
func (fs *functionService) CreateFunction(ctx context.Context, req *udfhostv1.CreateFunctionRequest) (*udfhostv1.FunctionInfo, error) {
	s := fs.s
	env := envOrDefault(req.Env)
	poolName := req.Pool
	if poolName == "" {
		poolName = "default"
	}
	if _, err := s.policy.Env(env); err != nil {
		return nil, err
	}
	if _, err := s.policy.Pool(env, poolName); err != nil {
		return nil, err
	}
	if req.Name == "" || req.ArtifactId == "" || req.Export == "" || req.Signature == "" {
		return nil, fmt.Errorf("%w: name, artifact, export and signature are all required", errInvalid)
	}
	art, err := s.store.Get(ctx, req.ArtifactId)
	if err != nil {
		return nil, err
	}
	if art.Env != env {
		return nil, fmt.Errorf("%w: artifact %s belongs to environment %q, not %q", errInvalid, art.ID, art.Env, env)
	}
	args, result, err := functions.ParseSignature(req.Signature)
	if err != nil {
		return nil, err
	}
	abi, err := functions.ChooseABI(art, req.Export, args, result, req.Abi)
	if err != nil {
		return nil, err
	}
	f := &functions.Function{
		Name: req.Name, Org: s.policy.Org, Env: env, Pool: poolName, ArtifactID: art.ID, Digest: art.Digest,
		Export: req.Export, Args: args, Result: result, ABI: abi, CreatedAt: time.Now().UTC(),
	}
	defer s.digestLocks.lock(art.Digest)()
	if _, err := s.fns.Get(env, req.Name); err == nil {
		return nil, fmt.Errorf("%w: %s in environment %s", functions.ErrExists, req.Name, env)
	}
	id := s.identity(f)
	w, err := s.pods.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("start worker for function %s: %w", req.Name, err)
	}
	spec := f.Spec()
	if err := w.Prepare(ctx, &spec); err != nil {
		return nil, fmt.Errorf("%w: prepare function %s: %v", errInvalid, req.Name, err)
	}
	if err := s.audit.Record(ctx, audit.Event{
		Type: audit.TypeFunctionCreated, Actor: principal(ctx), Pod: id.SPIFFEID(),
		Resource: "function/" + env + "/" + f.Name, Decision: audit.Allow,
		Details: map[string]string{"artifact": art.ID, "digest": art.Digest, "export": f.Export, "signature": f.Signature()},
	}); err != nil {
		return nil, err
	}
	if err := s.fns.Create(f); err != nil {
		return nil, err
	}
	return s.functionProto(f), nil
}

func (fs *functionService) GetFunction(ctx context.Context, req *udfhostv1.GetFunctionRequest) (*udfhostv1.FunctionInfo, error) {
	f, err := fs.s.fns.Get(envOrDefault(req.Env), req.Name)
	if err != nil {
		return nil, err
	}
	return fs.s.functionProto(f), nil
}

func (fs *functionService) ListFunctions(ctx context.Context, req *udfhostv1.ListFunctionsRequest) (*udfhostv1.ListFunctionsResponse, error) {
	resp := &udfhostv1.ListFunctionsResponse{}
	for _, f := range fs.s.fns.List(req.Env) {
		resp.Functions = append(resp.Functions, fs.s.functionProto(f))
	}
	return resp, nil
}

// DeleteFunction removes the binding and stops the pod's worker once no
// function needs it.
func (fs *functionService) DeleteFunction(ctx context.Context, req *udfhostv1.DeleteFunctionRequest) (*udfhostv1.DeleteFunctionResponse, error) {
	s := fs.s
	env := envOrDefault(req.Env)
	f, err := s.fns.Get(env, req.Name)
	if err != nil {
		return nil, err
	}
	defer s.digestLocks.lock(f.Digest)()
	if f, err = s.fns.Get(env, req.Name); err != nil {
		return nil, err // deleted while we waited
	}
	id := s.identity(f)
	if err := s.audit.Record(ctx, audit.Event{
		Type: audit.TypeFunctionDeleted, Actor: principal(ctx), Pod: id.SPIFFEID(),
		Resource: "function/" + env + "/" + f.Name, Decision: audit.Allow,
	}); err != nil {
		return nil, err
	}
	if _, err := s.fns.Delete(env, req.Name); err != nil {
		return nil, err
	}
	for _, other := range s.fns.List("") {
		if s.identity(other) == id {
			return &udfhostv1.DeleteFunctionResponse{}, nil
		}
	}
	s.pods.Stop(ctx, id)
	return &udfhostv1.DeleteFunctionResponse{}, nil
}

func (s *Server) functionProto(f *functions.Function) *udfhostv1.FunctionInfo {
	abi := udfhostv1.ABI_ABI_DIRECT
	if f.ABI == sandbox.ABIBatch {
		abi = udfhostv1.ABI_ABI_BATCH
	}
	return &udfhostv1.FunctionInfo{
		Name: f.Name, ArtifactId: f.ArtifactID, Digest: f.Digest, Export: f.Export,
		Signature: f.Signature(), ArgTypes: f.Args, ResultType: f.Result,
		Env: f.Env, Pool: f.Pool, Abi: abi, SpiffeId: s.identity(f).SPIFFEID(),
		CreatedAt: timestamppb.New(f.CreatedAt),
	}
}
