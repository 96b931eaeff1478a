package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/udfhost/udfhost/policies"
)

// TLS of the gRPC listeners. With Config.TLSCert and TLSKey every gRPC
// listener (the public network's and each private network's) serves TLS;
// with Config.ClientCA too, clients may present a certificate, which the
// handshake verifies against that CA (a certificate from another CA or an
// expired one fails the handshake, and the failure is audited as
// auth.failed). A verified certificate whose URI SAN is a SPIFFE ID
// authenticates the principal with that spiffe_id (identify); a client
// without one still authenticates with its bearer token.

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
			return nil, errors.New("--client-ca needs --tls-cert and --tls-key: client certificates are verified in the TLS handshake")
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
		// IfGiven: a caller without a certificate still authenticates
		// with its bearer token.
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// serverCreds are the gRPC listeners' transport credentials: cfg's TLS,
// with every handshake refused for its client certificate audited as an
// authentication failure.
func (s *Server) serverCreds(cfg *tls.Config) credentials.TransportCredentials {
	return auditedTLS{TransportCredentials: credentials.NewTLS(cfg), s: s}
}

// auditedTLS records the handshakes that fail on the client's
// certificate; the client learns why from the TLS alert (unknown
// certificate authority, expired certificate, bad certificate).
type auditedTLS struct {
	credentials.TransportCredentials
	s *Server
}

func (a auditedTLS) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := a.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			a.s.authFails.Deny(context.Background(), raw.RemoteAddr().String(), "tls", certReason(verr.Err))
		} else {
			// A client that does not speak TLS, a scanner, a hang-up:
			// nothing about who it is.
			a.s.log.Debug("TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		}
	}
	return conn, info, err
}

func (a auditedTLS) Clone() credentials.TransportCredentials {
	return auditedTLS{TransportCredentials: a.TransportCredentials.Clone(), s: a.s}
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

// clientCert is the verified client certificate of the call in ctx, or
// nil: only a handshake that verified it against the client CA leaves
// one (VerifyClientCertIfGiven).
func clientCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.PeerCertificates) == 0 {
		return nil
	}
	return info.State.PeerCertificates[0]
}

// identify authenticates the call in ctx with headers md: by its client
// certificate's SPIFFE ID when that names a principal (a bearer token on
// the same call must then be the same principal's), else by its bearer
// token (checkToken). It returns the principal, the SPIFFE ID that
// authenticated it ("" for a token) or why the call is refused.
func (s *Server) identify(ctx context.Context, md metadata.MD) (*policies.Principal, string, *authFailure) {
	cert := clientCert(ctx)
	if cert == nil {
		p, fail := s.checkToken(md)
		return p, "", fail
	}
	id, err := x509svid.IDFromCert(cert)
	if err != nil {
		return nil, "", &authFailure{reason: reasonNoSPIFFEID, hint: err.Error()}
	}
	p, err := s.policy.AuthenticateSPIFFE(id.String())
	if err != nil {
		// No principal has this SPIFFE ID: the bearer token decides, if
		// the call has one.
		if len(md.Get("authorization")) == 0 {
			return nil, "", &authFailure{reason: "no principal has SPIFFE ID " + id.String(), hint: "add it to a principal's spiffe_id in the policy, or send " + expectedAuth}
		}
		p, fail := s.checkToken(md)
		return p, "", fail
	}
	if len(md.Get("authorization")) > 0 {
		tp, fail := s.checkToken(md)
		if fail != nil {
			return nil, "", fail
		}
		if tp.Name != p.Name {
			return nil, "", &authFailure{reason: reasonOtherToken, hint: fmt.Sprintf("the certificate's SPIFFE ID %s is principal %q's; send its token or none", id, p.Name)}
		}
	}
	return p, id.String(), nil
}
