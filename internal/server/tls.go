package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/udfhost/udfhost/policies"
)

// TLS of the gRPC listeners. With Config.TLSCert and TLSKey every gRPC
// listener (the public network's and each private network's) serves TLS;
// with Config.ClientCA too (or, for a private network, the policy's
// client_ca of that network, which replaces it there), clients may
// present a certificate. The handshake only checks that the client holds
// its key; the chain is verified against the CA on every call, with the
// headers (identify): a certificate from another CA, an expired one or
// one without a SPIFFE ID is then refused as UNAUTHENTICATED with why,
// which the client always gets and the audit log records (auth.failed).
// A failed handshake could tell the client no more than a TLS alert,
// which under TLS 1.3 races the client's first write, so the client often
// sees only "broken pipe". A verified certificate whose URI SAN is a
// SPIFFE ID authenticates the principal with that spiffe_id; a client
// without a certificate still authenticates with its bearer token.

// Reasons for refusing a client certificate (auth.failed records are
// grouped by them).
const (
	reasonCertUnknownCA = "client certificate not signed by the client CA"
	reasonCertExpired   = "client certificate expired or not yet valid"
	reasonCertInvalid   = "client certificate not valid"
	reasonNoSPIFFEID    = "client certificate has no SPIFFE ID (URI SAN spiffe://...)"
	reasonOtherToken    = "bearer token and client certificate name different principals"
)

// tlsConfig is the gRPC listeners' TLS configuration, or nil when the
// server serves plaintext (no TLSCert).
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLSCert == "" && c.TLSKey == "" {
		if c.ClientCA != "" {
			return nil, errors.New("--client-ca needs --tls-cert and --tls-key: client certificates come over TLS")
		}
		return nil, nil
	}
	if c.TLSCert == "" || c.TLSKey == "" {
		return nil, errors.New("TLS needs both --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load the server certificate (--tls-cert %s, --tls-key %s): %w", c.TLSCert, c.TLSKey, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("read the client CA (--client-ca): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s (--client-ca) holds no PEM certificate", c.ClientCA)
		}
		// Requested, not required (forNetwork): a caller without a
		// certificate still authenticates with its bearer token.
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequestClientCert
	}
	return cfg, nil
}

// certReason is the stable reason a client certificate was refused for.
func certReason(err error) string {
	var inv x509.CertificateInvalidError
	switch {
	case errors.As(err, &x509.UnknownAuthorityError{}):
		return reasonCertUnknownCA
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return reasonCertExpired
	}
	return reasonCertInvalid
}

// clientCert is the client certificate of the call in ctx, verified
// against the client CA, nil when the call has none (or the server no
// client CA), or why it is refused.
func (s *Server) clientCert(ctx context.Context, pol *policies.Policy) (*x509.Certificate, *authFailure) {
	network := networkOf(ctx)
	pool, from := s.clientPool(pol, network)
	if pool == nil {
		return nil, nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil, nil
	}
	if err := s.verified.verify(pool, info.State.PeerCertificates, time.Now()); err != nil {
		return nil, &authFailure{reason: certReason(err), hint: fmt.Sprintf("network %s verifies client certificates with %s: %v", network, from, err)}
	}
	return info.State.PeerCertificates[0], nil
}

// clientPool is what verifies the client certificates of network's
// calls, and where it is from: the network's own client_ca, else serve
// --client-ca; nil when there is neither, and a certificate is then not
// looked at.
func (s *Server) clientPool(pol *policies.Policy, network string) (*x509.CertPool, string) {
	if n := pol.Networks[network]; n != nil && n.ClientCAs != nil {
		return n.ClientCAs, "its client_ca in the policy"
	}
	return s.clientCA, "serve --client-ca"
}

// forNetwork is the TLS configuration of a connection to the listener
// of the network hello arrived on: a client certificate is asked for,
// naming the CAs of clientPool, only where there are some.
func (s *Server) forNetwork(base *tls.Config) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		network := policies.PublicNetwork
		if a, ok := hello.Conn.LocalAddr().(networkAddr); ok {
			network = a.network
		}
		cfg := base.Clone()
		cfg.GetConfigForClient = nil
		if pool, _ := s.clientPool(s.policy.Load(), network); pool != nil {
			// Requested, not required: a caller without a certificate
			// still authenticates with its bearer token. The chain is
			// verified with the headers (identify).
			cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequestClientCert
		} else {
			cfg.ClientCAs, cfg.ClientAuth = nil, tls.NoClientCert
		}
		return cfg, nil
	}
}

// maxVerifiedCerts bounds verifiedCerts' memory.
const maxVerifiedCerts = 4096

// verifiedCerts verifies client certificate chains. A chain is verified
// on every call, so a certificate that expires while its connection is
// open stops working then; the verdict for a connection's chain is
// remembered until the chain's first expiry (a chain verification costs
// ~0.1-0.2 ms, and every call checks twice: in the tap and in the
// interceptor). It is keyed by the leaf as the connection holds it and
// the pool, so another connection, or a pool a reloaded policy brings,
// verifies again.
type verifiedCerts struct {
	mu sync.Mutex
	// until maps a leaf and pool to when its verified chain's validity
	// ends.
	until map[verifiedKey]time.Time
}

type verifiedKey struct {
	leaf *x509.Certificate
	pool *x509.CertPool
}

// verify checks that certs (leaf first, then the intermediates the
// client sent) chain to pool at now, for client authentication.
func (v *verifiedCerts) verify(pool *x509.CertPool, certs []*x509.Certificate, now time.Time) error {
	k := verifiedKey{certs[0], pool}
	v.mu.Lock()
	until, ok := v.until[k]
	v.mu.Unlock()
	if ok && now.Before(until) {
		return nil
	}
	opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, ic := range certs[1:] {
		opts.Intermediates.AddCert(ic)
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		return err
	}
	until = certs[0].NotAfter
	for _, c := range chains[0] {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	v.mu.Lock()
	if v.until == nil || len(v.until) >= maxVerifiedCerts {
		v.until = map[verifiedKey]time.Time{} // connections come and go; start over
	}
	v.until[k] = until
	v.mu.Unlock()
	return nil
}

// identify authenticates the call in ctx with headers md: by its client
// certificate's SPIFFE ID when that names a principal (a bearer token on
// the same call must then be the same principal's), else by its bearer
// token (checkToken). It returns the principal, the SPIFFE ID that
// authenticated it ("" for a token) or why the call is refused.
func (s *Server) identify(ctx context.Context, pol *policies.Policy, md metadata.MD) (*policies.Principal, string, *authFailure) {
	cert, fail := s.clientCert(ctx, pol)
	if fail != nil {
		return nil, "", fail
	}
	if cert == nil {
		p, fail := s.checkToken(pol, md)
		return p, "", fail
	}
	id, err := spiffeIDOf(cert)
	if err != nil {
		return nil, "", &authFailure{reason: reasonNoSPIFFEID, hint: err.Error()}
	}
	p, err := pol.AuthenticateSPIFFE(id.String())
	if err != nil {
		// No principal has this SPIFFE ID: the bearer token decides, if
		// the call has one.
		if len(md.Get("authorization")) == 0 {
			return nil, "", &authFailure{reason: "no principal has SPIFFE ID " + id.String(), hint: "add it to a principal's spiffe_id in the policy, or send " + expectedAuth}
		}
		p, fail := s.checkToken(pol, md)
		return p, "", fail
	}
	if len(md.Get("authorization")) > 0 {
		tp, fail := s.checkToken(pol, md)
		if fail != nil {
			return nil, "", fail
		}
		if tp.Name != p.Name {
			return nil, "", &authFailure{reason: reasonOtherToken, hint: fmt.Sprintf("the certificate's SPIFFE ID %s is principal %q's; send its token or none", id, p.Name)}
		}
	}
	return p, id.String(), nil
}

// spiffeIDOf is the SPIFFE ID of an X.509-SVID: its one URI SAN, parsed
// and validated by go-spiffe (as x509svid.IDFromCert, whose package
// would pull JWT support into the build for five lines).
func spiffeIDOf(cert *x509.Certificate) (spiffeid.ID, error) {
	switch len(cert.URIs) {
	case 0:
		return spiffeid.ID{}, errors.New("the certificate has no URI SAN")
	case 1:
		return spiffeid.FromURI(cert.URIs[0])
	}
	return spiffeid.ID{}, fmt.Errorf("the certificate has %d URI SANs; an X.509-SVID has exactly one", len(cert.URIs))
}

// startTLS is the gRPC listeners' transport credentials, or nil for
// plaintext; a policy network with its own client_ca needs TLS.
func (s *Server) startTLS() (credentials.TransportCredentials, error) {
	cfg, err := s.cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if err := s.checkClientCAs(s.policy.Load()); err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, nil
	}
	s.clientCA = cfg.ClientCAs
	cfg.GetConfigForClient = s.forNetwork(cfg)
	return credentials.NewTLS(cfg), nil
}

// checkClientCAs refuses a policy (at start, and reloaded) that gives a
// network its own client_ca while the server serves plaintext, where no
// certificate would ever be seen.
func (s *Server) checkClientCAs(pol *policies.Policy) error {
	if s.cfg.TLSCert != "" {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(pol.Networks)) {
		if pol.Networks[name].ClientCAs != nil {
			return fmt.Errorf("network %q has a client_ca, but serve has no --tls-cert and --tls-key: client certificates need TLS", name)
		}
	}
	return nil
}
