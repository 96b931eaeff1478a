// Package server wires udfhost's parts into one service: the gRPC API, the
// pre-signed URL endpoint, the pod registry and the audit log.
package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/egress"
	"github.com/udfhost/udfhost/pods"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/presign"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
	"github.com/udfhost/udfhost/sandbox"
)

// maxURLHeaderBytes bounds the request line and headers of a request to
// the pre-signed URL endpoint.
const maxURLHeaderBytes = 32 << 10

// Config is everything a Server needs; zero values are the embedded defaults.
type Config struct {
	DataDir    string // default ./udfhost-data
	Listen     string // gRPC of the public network; default 127.0.0.1:7443
	HTTPListen string // pre-signed URLs; default 127.0.0.1:7444
	// Policy is what the server enforces; default policies.Default. Its
	// private networks are served on their own Listen addresses. A policy
	// with no principals admits one: "admin" (admin in every
	// environment), by the token in the data directory.
	Policy *policies.Policy
	// LoadPolicy re-reads Policy.File on Reload; default policies.Load.
	LoadPolicy func(path string) (*policies.Policy, error)
	// Reload asks Run to re-read the policy file (Server.Reload) on each
	// receive; serve sends SIGHUP there. Nil: never.
	Reload <-chan os.Signal
	Logger *slog.Logger
	// WorkerExe and WorkerArgs re-execute the worker; default
	// /proc/self/exe worker.
	WorkerExe    string
	WorkerArgs   []string
	WorkerStderr io.Writer
	// SummaryInterval is how often invocation summaries go to the audit log.
	SummaryInterval time.Duration
	// AuthFailureInterval is how often repeated authentication failures
	// of one source are recorded as one audit record (authFailures);
	// default 10 s.
	AuthFailureInterval time.Duration
	// RelaxSandbox lets workers run with isolation layers missing (a
	// development machine without root or cgroups). By default (strict
	// mode) the server refuses to start, and refuses a worker, when one
	// cannot be installed.
	RelaxSandbox bool
	// TLSCert and TLSKey (PEM files) make every gRPC listener serve TLS;
	// ClientCA (PEM) makes them verify the client certificates presented,
	// whose SPIFFE ID authenticates a principal (tls.go). Unset: plaintext.
	TLSCert, TLSKey, ClientCA string
	// EgressResolver resolves connections' DNS names (nil: the system's)
	// and EgressRootCAs verifies their TLS servers (nil: the system's
	// roots); tests give their own.
	EgressResolver egress.Resolver
	EgressRootCAs  *x509.CertPool
	// AuditCheckpointInterval is how often the audit log signs a
	// checkpoint at most apart (audit.Options.CheckpointInterval); 0:
	// the audit package's default.
	AuditCheckpointInterval time.Duration
	// HostID names this host in its audit records and in a shared store;
	// default the id kept in <data>/host-id, created at first start.
	HostID string
	// Store is where artifacts, quarantines and functions live: "" (or
	// "local") for the data directory, one host's; s3://BUCKET[/PREFIX]
	// for a bucket every host configured with it shares (store.go).
	// Credentials come from the standard AWS chain.
	Store string
	// S3Endpoint (the S3 server's base URL; default AWS's own), S3Region
	// and S3PathStyle (ENDPOINT/BUCKET addressing, which S3-compatible
	// servers usually need) say how to reach an s3:// Store.
	S3Endpoint, S3Region string
	S3PathStyle          bool
	// SyncInterval is how often a host on an s3:// Store picks up what
	// the other hosts changed; default 500 ms (sync.go).
	SyncInterval time.Duration
}

// Server is one running udfhost. Start it, then Shutdown it.
type Server struct {
	cfg   Config
	log   *slog.Logger
	token string
	// hostID is this host's stable id (loadOrCreateHostID).
	hostID string
	// admin is the principal of token, admitted while the policy names
	// no principals of its own.
	admin *policies.Principal
	audit *callLog
	// spec is the store's settings: nil for the data directory.
	spec  *storeSpec
	store artifacts.Service
	fns   *functions.Registry
	pods  *pods.Registry
	// policy is what the server enforces; Reload swaps it. A call reads
	// it once, at its start (policyOf), never from here.
	policy   atomic.Pointer[policies.Policy]
	reloadMu sync.Mutex
	// poolCaps are the pools' caps on live pods, recomputed on reload.
	poolCaps atomic.Pointer[map[string]int]
	memTotal int64 // the host's memory, read at start (hostMemory)
	stats    *invocationStats
	// egress is the broker through which bound functions reach their
	// connections (egress.go).
	egress *egress.Broker
	spares *sandbox.Spares
	host   *sandbox.Host
	// workerBase is the sandbox configuration every worker starts from.
	workerBase sandbox.Config

	grpcLn, httpLn net.Listener
	// privateLns serve the policy's private networks (grpcLn is the
	// public one's).
	privateLns []privateListener
	grpc       *grpc.Server
	http       *http.Server
	health     *health.Server
	authFails  *authFailures
	// clientCA verifies client certificates where the network has no
	// client_ca of its own (tls.go); nil: --client-ca not given.
	clientCA *x509.CertPool
	verified verifiedCerts
	// digestLocks serialise function creation and deletion, and artifact
	// deletion, per digest: a pod is never stopped while a new function
	// needs it, and a slow pod start holds up no other tenant.
	digestLocks keyLocks
	stop        chan struct{}
	// draining is closed when Shutdown begins: calls that would run
	// until cancelled (a following Tail) end so that the drain does not
	// wait for them.
	draining chan struct{}
	bg       sync.WaitGroup

	// serveErrs collects what Serve of either listener returned, other
	// than the errors that mean a normal stop.
	serveMu   sync.Mutex
	serveErrs []error
	// serveDown is closed when a listener stops serving unasked: Run
	// then shuts the server down instead of waiting for a signal.
	serveDown     chan struct{}
	serveDownOnce sync.Once
	// shutdown makes Shutdown idempotent: later calls return the first
	// call's result.
	shutdown    sync.Once
	shutdownErr error
}

// New returns an unstarted server.
func New(cfg Config) *Server {
	if cfg.DataDir == "" {
		cfg.DataDir = "udfhost-data"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:7443"
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:7444"
	}
	if cfg.Policy == nil {
		cfg.Policy = policies.Default()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.SummaryInterval == 0 {
		cfg.SummaryInterval = 30 * time.Second
	}
	if cfg.AuthFailureInterval == 0 {
		cfg.AuthFailureInterval = 10 * time.Second
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = defaultSyncInterval
	}
	if cfg.LoadPolicy == nil {
		cfg.LoadPolicy = policies.Load
	}
	s := &Server{cfg: cfg, log: cfg.Logger, admin: dataDirAdmin(), stop: make(chan struct{}), draining: make(chan struct{}), serveDown: make(chan struct{})}
	s.policy.Store(cfg.Policy)
	return s
}

// Start opens the data directory (creating what is missing), binds both
// listeners and starts serving. It returns once both accept connections.
func (s *Server) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.closeAll(context.Background())
		}
	}()
	data := s.cfg.DataDir
	policy := s.policy.Load()
	// Certificates and keys are read, and the host id and store flags
	// checked, before the data directory is touched, so a mistyped flag
	// leaves nothing behind.
	creds, err := s.startTLS()
	if err != nil {
		return err
	}
	if s.cfg.HostID != "" {
		if err := checkHostID(s.cfg.HostID); err != nil {
			return err
		}
	}
	if s.spec, err = parseStore(s.cfg); err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	// A private environment stays private for good: the data dir
	// remembers every one it served, and refuses a policy that makes one
	// public (FILE:LINE:COL of its visibility).
	if err := policies.CheckServed(data, policy); err != nil {
		return err
	}
	if err := policies.RecordServed(data, policy); err != nil {
		return err
	}
	if s.token, err = loadOrCreateToken(filepath.Join(data, "admin.token")); err != nil {
		return err
	}
	if s.hostID, err = loadOrCreateHostID(filepath.Join(data, "host-id"), s.cfg.HostID); err != nil {
		return err
	}
	if s.audit, err = openAudit(filepath.Join(data, "audit", "audit.log"), audit.Options{Host: s.hostID, CheckpointInterval: s.cfg.AuditCheckpointInterval}); err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	s.log.Info("audit log", "path", s.audit.Path(), "checkpoint_key", s.audit.VerifierKey(), "append_only", s.audit.AppendOnlyFlag() == nil, "append_only_detail", fmt.Sprint(s.audit.AppendOnlyFlag()))
	s.authFails = newAuthFailures(s.audit.Log, s.log, maxFailSources, failBurst)
	key, err := presign.LoadOrCreateKey(filepath.Join(data, "presign.key"))
	if err != nil {
		return fmt.Errorf("load URL signing key: %w", err)
	}
	cacheDir := filepath.Join(data, "cache", "wazero")
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return fmt.Errorf("create compilation cache: %w", err)
	}
	if s.host, err = sandbox.NewHost(); err != nil {
		return err
	}
	if s.host.CgroupErr != nil && !s.cfg.RelaxSandbox {
		return fmt.Errorf("%w: cgroups: %v (strict mode; serve --strict=false relaxes it on a development machine)", sandbox.ErrLayerMissing, s.host.CgroupErr)
	}
	s.workerBase = s.host.Config(sandbox.Config{Exe: s.cfg.WorkerExe, Args: s.cfg.WorkerArgs, Stderr: s.cfg.WorkerStderr, Strict: !s.cfg.RelaxSandbox})
	if s.grpcLn, err = net.Listen("tcp", s.cfg.Listen); err != nil {
		return fmt.Errorf("listen for gRPC: %w", err)
	}
	if err := s.listenPrivate(); err != nil {
		return err
	}
	if s.httpLn, err = net.Listen("tcp", s.cfg.HTTPListen); err != nil {
		return fmt.Errorf("listen for pre-signed URLs: %w", err)
	}
	pool, _ := policy.Pool("default", "default")
	maxSize := int64(100 << 20)
	if pool != nil {
		maxSize = pool.MaxArtifactBytes
	}
	wasmInterrupt := pool != nil && pool.Interrupt == policies.InterruptWasm
	var uploads http.Handler
	if s.spec == nil {
		local, err := artifacts.New(ctx, artifacts.Config{
			Dir:    filepath.Join(data, "artifacts"),
			Signer: presign.NewSigner(key, "http://"+s.httpLn.Addr().String()),
			// What the store records for a call names the caller's network.
			Audit: callerAudit{s.audit},
			// Forged and replayed upload URLs are anonymous like a bad token.
			Denials:  s.authFails,
			MaxSize:  maxSize,
			CacheDir: cacheDir,
			// Compile as the default pool's workers will, so they load the
			// result from the cache instead of compiling again.
			Runtime:    sandbox.RuntimeConfig(wasmInterrupt),
			Precompile: s.precompile(wasmInterrupt),
		})
		if err != nil {
			return fmt.Errorf("open artifact store: %w", err)
		}
		s.store, uploads = local, local
		if s.fns, err = functions.OpenRegistry(filepath.Join(data, "functions")); err != nil {
			return err
		}
	} else {
		if err := s.openShared(ctx, cacheDir, maxSize, wasmInterrupt); err != nil {
			return err
		}
		uploads = s3Uploads(s.spec)
	}
	s.stats = newInvocationStats()
	s.egress = egress.New(egress.Config{Audit: s.audit, Resolver: s.cfg.EgressResolver, RootCAs: s.cfg.EgressRootCAs})
	// One spare worker process: a new pod then waits only for its module.
	s.spares = sandbox.NewSpares(s.workerBase, 1)
	s.memTotal = s.hostMemory()
	s.pods = s.newPods(cacheDir, s.memTotal)

	admit := newAdmission(policy.Edge)
	opts := s.grpcOptions(admit)
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	} else {
		s.log.Warn("development setup: the gRPC listeners are plaintext and bearer tokens cross the network in the clear; serve --tls-cert/--tls-key (and --client-ca) for anything else")
	}
	s.grpc = grpc.NewServer(opts...)
	udfhostv1.RegisterArtifactServiceServer(s.grpc, &artifactService{s: s})
	udfhostv1.RegisterFunctionServiceServer(s.grpc, &functionService{s: s})
	udfhostv1.RegisterInvokeServiceServer(s.grpc, &invokeService{s: s, admit: admit})
	udfhostv1.RegisterIdentityServiceServer(s.grpc, &identityService{s: s})
	udfhostv1.RegisterAuditServiceServer(s.grpc, &auditService{s: s})
	s.registerHealth()
	reflection.Register(s.grpc)

	mux := http.NewServeMux()
	mux.Handle("/v1/objects/", uploads)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	// Anyone can reach the URL endpoint; a pre-signed PUT's request line
	// and headers are a few KiB (an S3-style URL is the longest), so
	// net/http's 1 MiB default header allowance is only a gift to floods.
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: maxURLHeaderBytes}

	started := map[string]string{"grpc": s.grpcLn.Addr().String(), "http": s.httpLn.Addr().String(), "store": s.spec.String()}
	for _, p := range s.privateLns {
		started["network."+p.network] = p.ln.Addr().String()
	}
	if err := s.audit.Record(ctx, audit.Event{
		Type: audit.TypeServerStarted, Actor: "udfhost", Decision: audit.Allow, Details: started,
	}); err != nil {
		return fmt.Errorf("audit start: %w", err)
	}
	if err := s.checkSandbox(ctx); err != nil {
		return err
	}
	s.serve()
	s.bg.Add(1)
	go func() { defer s.bg.Done(); s.flushSummaries() }()
	if s.spec != nil {
		s.bg.Add(1)
		go func() { defer s.bg.Done(); s.runSync(s.cfg.SyncInterval) }()
	}
	s.log.Info("ready", "grpc", s.grpcLn.Addr().String(), "http", s.httpLn.Addr().String(), "data", data, "store", s.spec.String(), "host", s.hostID, "networks", s.networkAddrs())
	return nil
}

// grpcOptions are the gRPC server's options. Admission runs before a
// message is read: a flood of big batches is refused while it is still in
// the client, not after it is in memory; and authentication runs first in
// admission's tap, so an unauthenticated call is refused from its headers
// and none of its message is read (the interceptors check again).
func (s *Server) grpcOptions(admit *admission) []grpc.ServerOption {
	admit.auth = s.tapAuth
	return append(admit.serverOptions(),
		grpc.ChainUnaryInterceptor(s.requestIDUnary, s.pinPolicyUnary, s.unaryAuth),
		grpc.ChainStreamInterceptor(s.requestIDStream, s.pinPolicyStream, s.streamAuth),
		grpc.MaxRecvMsgSize(policies.MaxMessageBytes),
		grpc.MaxSendMsgSize(policies.MaxMessageBytes),
	)
}

// servedNames are the names the health service answers for: the server as
// a whole ("") and each API service.
var servedNames = []string{
	"",
	udfhostv1.ArtifactService_ServiceDesc.ServiceName,
	udfhostv1.FunctionService_ServiceDesc.ServiceName,
	udfhostv1.InvokeService_ServiceDesc.ServiceName,
	udfhostv1.IdentityService_ServiceDesc.ServiceName,
	udfhostv1.AuditService_ServiceDesc.ServiceName,
}

// registerHealth registers the health service with every name in
// servedNames SERVING; Shutdown turns them NOT_SERVING before it drains.
func (s *Server) registerHealth() {
	s.health = health.NewServer()
	for _, name := range servedNames {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
}

// serve starts serving every listener and flushing authentication
// failures, in s.bg; what Serve returns other than a normal stop is kept
// for Shutdown and logged. Each gRPC listener tags its connections with
// its network (networkListener).
func (s *Server) serve() {
	grpcLns := append([]privateListener{{network: policies.PublicNetwork, ln: s.grpcLn}}, s.privateLns...)
	s.bg.Add(2 + len(grpcLns))
	for _, l := range grpcLns {
		go func() {
			defer s.bg.Done()
			if err := s.grpc.Serve(networkListener{Listener: l.ln, network: l.network}); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.serveFailed(fmt.Errorf("serve gRPC of network %s on %s: %w", l.network, l.ln.Addr(), err))
			}
		}()
	}
	go func() {
		defer s.bg.Done()
		if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveFailed(fmt.Errorf("serve pre-signed URLs on %s: %w", s.httpLn.Addr(), err))
		}
	}()
	go func() { defer s.bg.Done(); s.authFails.run(s.stop, s.cfg.AuthFailureInterval) }()
}

func (s *Server) serveFailed(err error) {
	s.log.Error("listener stopped serving", "err", err)
	s.serveMu.Lock()
	s.serveErrs = append(s.serveErrs, err)
	s.serveMu.Unlock()
	s.serveDownOnce.Do(func() { close(s.serveDown) })
}

// Addr is the public network's gRPC listener's address.
func (s *Server) Addr() string { return s.grpcLn.Addr().String() }

// networkAddrs lists the private networks' listeners, "name=addr,...".
func (s *Server) networkAddrs() string {
	var b strings.Builder
	for i, p := range s.privateLns {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.network + "=" + p.ln.Addr().String())
	}
	return b.String()
}

// HTTPAddr is the pre-signed URL endpoint's address.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// Shutdown stops accepting calls, lets in-flight ones finish (until ctx is
// done), stops every worker and flushes the audit log. Health reports
// NOT_SERVING for every service while it drains. Its error joins what went
// wrong: a listener that had stopped serving, the HTTP server's shutdown,
// and closing the parts. Calling it again returns the first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Do(func() { s.shutdownErr = s.doShutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) doShutdown(ctx context.Context) error {
	// NOT_SERVING first, so that balancers and probes stop sending calls
	// before the server stops accepting them.
	s.health.Shutdown()
	close(s.draining)
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.log.Warn("grace period over: cutting the calls still in flight")
		s.grpc.Stop()
		<-stopped
	}
	var errs []error
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shut down the pre-signed URL endpoint: %w", err))
		s.http.Close() // the transfers still open are cut
	}
	close(s.stop)
	s.bg.Wait()
	s.serveMu.Lock()
	errs = append(append([]error(nil), s.serveErrs...), errs...)
	s.serveMu.Unlock()
	return errors.Join(append(errs, s.closeAll(ctx))...)
}

func (s *Server) closeAll(ctx context.Context) error {
	var errs []error
	if s.pods != nil {
		s.pods.Close(ctx)
	}
	if s.egress != nil {
		s.egress.Close()
	}
	if s.spares != nil {
		s.spares.Close()
	}
	if s.stats != nil && s.audit != nil {
		errs = append(errs, s.writeSummaries(ctx))
	}
	// Counted refusals are recorded even when the grace period is over.
	if err := s.authFails.flush(context.WithoutCancel(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("audit authentication failures: %w", err))
	}
	if s.grpcLn != nil {
		s.grpcLn.Close()
	}
	for _, p := range s.privateLns {
		p.ln.Close()
	}
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	if s.audit != nil {
		if s.grpc != nil {
			errs = append(errs, s.audit.Record(ctx, audit.Event{Type: audit.TypeServerStopped, Actor: "udfhost", Decision: audit.Allow}))
		}
		errs = append(errs, s.audit.Close())
	}
	if s.host != nil {
		errs = append(errs, s.host.Close())
	}
	return errors.Join(errs...)
}

// Run starts a server and serves until ctx is done, or a listener stops
// serving, then shuts it down within the grace period. Each receive on
// cfg.Reload re-reads the policy file (Reload; a refusal is logged and
// audited there, and the server serves on).
func Run(ctx context.Context, cfg Config, grace time.Duration) error {
	s := New(cfg)
	if err := s.Start(ctx); err != nil {
		return err
	}
serving:
	for {
		select {
		case <-ctx.Done():
			break serving
		case <-s.serveDown:
			break serving
		case <-cfg.Reload:
			s.Reload(ctx)
		}
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return s.Shutdown(sctx)
}
