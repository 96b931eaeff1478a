package egress

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
)

// Request is one guest's HTTP request over a connection. Pod, Function,
// EnvVisibility and Conn come from the server, which looked the
// connection up in the current policy and checked the function's binding;
// Method, Path, Header, Body and Addr are the guest's and trusted in
// nothing.
type Request struct {
	Pod           string              // SPIFFE ID of the calling pod
	Function      string              // "env/name" of the calling function
	RequestID     string              // the API call's id, for the audit record; optional
	EnvVisibility policies.Visibility // of the function's environment
	Conn          *policies.Connection

	Method string
	// Path is the path and query appended to the destination: it starts
	// with "/" (origin form); the scheme, host and port are the grant's.
	Path string
	// Header holds only allow-listed headers (Accept, Content-Type,
	// User-Agent, …); any other refuses the request.
	Header http.Header
	Body   []byte
	// Addr picks the address of a CIDR connection: inside its prefix,
	// and a port it lists (port 0: its only port, when it lists one).
	// It must be unset for a connection that names its host.
	Addr netip.AddrPort
	// Limits are the calling function's pool's (policies.Pool's egress
	// limits); a zero field takes the broker's. MaxConcurrency is the
	// broker's alone.
	Limits Limits
}

// Response is what the destination answered: status, the allow-listed
// headers and the body, whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Resolver answers DNS; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Auditor records events; *audit.Log satisfies it.
type Auditor interface {
	Record(ctx context.Context, e audit.Event) error
}

// Config configures a Broker.
type Config struct {
	// Audit records every request; required.
	Audit Auditor
	// Resolver resolves DNS-named destinations; nil: net.DefaultResolver.
	Resolver Resolver
	Limits   Limits
	// RootCAs verify https destinations; nil: the system's roots.
	RootCAs *x509.CertPool
	// ResolvePrivate lists private or loopback ranges a DNS-named
	// destination may resolve into (an operator's internal zone); empty:
	// none may. It never admits a forbidden address.
	ResolvePrivate []netip.Prefix
	// Now is the clock of the audit's durations; nil: time.Now.
	Now func() time.Time
}

// Broker sends guests' requests. It is safe for concurrent use.
type Broker struct {
	cfg    Config
	limits Limits
	gate   *gate
	seq    atomic.Uint64

	mu         sync.Mutex
	transports map[string]*http.Transport // by TLS server name
}

// New returns a broker; it panics without cfg.Audit, since a broker that
// cannot audit must send nothing.
func New(cfg Config) *Broker {
	if cfg.Audit == nil {
		panic("egress.New: Config.Audit is required")
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := cfg.Limits.withDefaults()
	return &Broker{cfg: cfg, limits: l, gate: newGate(l), transports: map[string]*http.Transport{}}
}

// Limits returns the limits in force, defaults filled in.
func (b *Broker) Limits() Limits { return b.limits }

// Close closes idle connections.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.transports {
		t.CloseIdleConnections()
	}
}

// call is one request on its way: what the audit records say about it.
type call struct {
	req    Request
	id     string // env/name
	secret string
	// serverName is the TLS server name: the grant's DNS name, or "" for
	// an address (the URL's host, verified against IP SANs, no SNI).
	serverName string
	details    map[string]string
	lim        Limits // the request's, the broker's where it sets none
}

// Do checks req against its connection, sends it and returns the answer.
// Every outcome is audited (type egress.request); an error is an *Error
// wrapping ErrDenied, ErrUnavailable, ErrOverloaded or ErrTooLarge.
func (b *Broker) Do(ctx context.Context, req Request) (*Response, error) {
	if req.Conn == nil {
		req.Conn = &policies.Connection{Env: "(none)", Name: "(none)"}
		c := &call{req: req, id: "(none)/(none)", details: map[string]string{"function": req.Function}}
		return nil, b.deny(ctx, c, c.err(ErrDenied, "no connection given"))
	}
	c := &call{
		req:    req,
		id:     req.Conn.Env + "/" + req.Conn.Name,
		secret: req.Conn.Secret.Reveal(),
		details: map[string]string{
			"function":    req.Function,
			"method":      fmt.Sprintf("%.16s", req.Method),
			"destination": req.Conn.Destination(),
			"request":     strconv.FormatUint(b.seq.Add(1), 10),
		},
		lim: req.Limits.over(b.limits),
	}
	hreq, target, err := b.build(c)
	if err != nil {
		return nil, b.deny(ctx, c, err)
	}
	release, shared, err := b.gate.acquire(req.Pod, c.lim.PerPodConcurrency)
	if err != nil {
		e := &Error{Conn: c.id, Kind: ErrOverloaded, Msg: err.Error() + "; retry later", Shared: shared, after: retryHint}
		return nil, b.deny(ctx, c, e)
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, c.lim.Timeout)
	defer cancel()

	addr, err := b.pick(ctx, c, target)
	if err != nil {
		return nil, b.fail(ctx, c, err)
	}
	c.details["addr"] = addr.String()
	hreq.URL.Host = addr.String()
	if err := b.record(ctx, c, audit.Allow, "sending "+req.Method+" to "+addr.String()); err != nil {
		// Fail closed: nothing leaves the host unaudited.
		return nil, c.err(ErrUnavailable, "the audit log cannot record the request, so it is not sent: %v", err)
	}
	start := b.cfg.Now()
	resp, err := b.send(ctx, c, hreq.WithContext(ctx))
	c.details["duration_ms"] = strconv.FormatInt(b.cfg.Now().Sub(start).Milliseconds(), 10)
	if err != nil {
		return nil, b.fail(ctx, c, err)
	}
	// The answer is here: record it even if the deadline passes meanwhile.
	if err := b.record(context.WithoutCancel(ctx), c, audit.Allow, "answered "+strconv.Itoa(resp.Status)); err != nil {
		// The guest receives nothing whose receipt is not on record.
		return nil, c.err(ErrUnavailable, "the audit log cannot record the response, so it is withheld: %v", err)
	}
	return resp, nil
}

// build checks everything about req that needs no network and returns
// the request to send (its URL host still unset) and the address or name
// it goes to.
func (b *Broker) build(c *call) (*http.Request, target, error) {
	req, conn := c.req, c.req.Conn
	if !isToken(req.Method) {
		return nil, target{}, c.err(ErrDenied, "method %.16q is not an upper-case HTTP method", req.Method)
	}
	if err := policies.CheckEgress(req.EnvVisibility, conn, req.Method); err != nil {
		return nil, target{}, c.err(ErrDenied, "%v", err)
	}
	u, err := checkPath(req.Path)
	if err != nil {
		return nil, target{}, c.err(ErrDenied, "%v", err)
	}
	h, err := checkHeaders(req.Header, conn.SecretHeader)
	if err != nil {
		return nil, target{}, c.err(ErrDenied, "%v", err)
	}
	c.details["request_bytes"] = strconv.Itoa(len(req.Body))
	if len(req.Body) > c.lim.MaxRequestBytes {
		return nil, target{}, c.err(ErrTooLarge, "request body of %d bytes is over the limit of %d bytes", len(req.Body), c.lim.MaxRequestBytes)
	}
	t, err := targetOf(conn, req.Addr)
	if err != nil {
		return nil, target{}, c.err(ErrDenied, "%v", err)
	}
	u.Scheme = conn.Scheme
	hreq, err := http.NewRequest(req.Method, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		return nil, target{}, c.err(ErrDenied, "request: %v", err)
	}
	if len(req.Body) == 0 {
		hreq.Body, hreq.ContentLength = http.NoBody, 0
	}
	hreq.Header = h
	if h.Get("User-Agent") == "" {
		h.Set("User-Agent", userAgent)
	}
	if conn.SecretHeader != "" {
		h.Set(conn.SecretHeader, c.secret)
	}
	hreq.Host = t.hostHeader(conn.Scheme)
	c.serverName = t.name
	return hreq, t, nil
}
