package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// testCA is a certificate authority made at test time.
type testCA struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// certSpec is what a leaf certificate says.
type certSpec struct {
	server   bool      // a server certificate for 127.0.0.1, else a client one
	uris     []string  // URI SANs
	notAfter time.Time // default an hour from now
}

// issue returns a leaf certificate of spec signed by ca, as PEM
// certificate and key.
func (ca *testCA) issue(spec certSpec) (certPEM, keyPEM []byte) {
	t := ca.t
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "leaf"},
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     spec.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	if spec.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	for _, u := range spec.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writeFile writes b to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	flinkID = "spiffe://acme.example/ns/flink/sa/taskmanager"
	vaultID = "spiffe://acme.example/ns/vault/sa/reader"
)

// mtlsServer is a live server with the tenants' policy plus principal
// "flink" (invoker in payments) known by flinkID, serving TLS with a
// client CA.
type mtlsServer struct {
	s     *Server
	ca    *testCA
	vault *testCA        // treasury-link's own client_ca
	pool  *x509.CertPool // verifies the server
	ctx   context.Context
	audit string
}

func startMTLS(t *testing.T) *mtlsServer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (jailed workers, cgroups)")
	}
	dir := t.TempDir()
	ca := newTestCA(t, "udfhost test CA")
	cert, key := ca.issue(certSpec{server: true})
	p := tenantPolicy(policies.Private)
	p.Principals = append(p.Principals, &policies.Principal{Name: "flink", SPIFFEID: flinkID, Roles: map[string]policies.Role{"payments": policies.RoleInvoker}})
	// treasury-link verifies client certificates with its own CA.
	vault := newTestCA(t, "treasury CA")
	p.Networks[netTreasury].ClientCAs = x509.NewCertPool()
	p.Networks[netTreasury].ClientCAs.AddCert(vault.cert)
	p.Principals = append(p.Principals, &policies.Principal{Name: "vault", SPIFFEID: vaultID, Roles: map[string]policies.Role{"treasury": policies.RoleInvoker}})
	data := filepath.Join(dir, "data")
	s := New(Config{
		DataDir: data, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		Policy: p, Logger: slog.New(slog.DiscardHandler), SummaryInterval: time.Hour,
		TLSCert: writeFile(t, dir, "server.pem", cert), TLSKey: writeFile(t, dir, "server.key", key),
		ClientCA: writeFile(t, dir, "ca.pem", ca.pem),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &mtlsServer{s: s, ca: ca, vault: vault, pool: pool, ctx: ctx, audit: filepath.Join(data, "audit", "audit.log")}
}

// dial connects to network over TLS, presenting the client certificate
// cert/key when cert is not nil.
func (m *mtlsServer) dial(t *testing.T, network string, cert, key []byte) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: m.pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		kp, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		// Sent whatever CAs the server asks for, as the CLI does: Go's
		// client would silently leave out one of another CA.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	conn, err := grpc.NewClient(m.s.NetworkAddr(network), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// authFailed waits for an auth.failed record with reason.
func (m *mtlsServer) authFailed(t *testing.T, reason string) bool {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, r := range readAudit(t, m.audit) {
			if r.Type == audit.TypeAuthFailed && r.Decision == audit.Deny && strings.HasPrefix(r.Reason, reason) {
				return true
			}
		}
	}
	return false
}

func whoami(ctx context.Context, conn *grpc.ClientConn) (*udfhostv1.WhoAmIResponse, error) {
	return udfhostv1.NewIdentityServiceClient(conn).WhoAmI(ctx, &udfhostv1.WhoAmIRequest{})
}

// TestMTLS: over TLS, a client certificate's SPIFFE ID is its
// principal's; tokens keep working; a certificate from another CA, an
// expired one or one without a SPIFFE ID is refused with a clear message
// and an auth.failed record; a token of another principal with a
// certificate is refused.
func TestMTLS(t *testing.T) {
	m := startMTLS(t)
	flinkCert, flinkKey := m.ca.issue(certSpec{uris: []string{flinkID}})
	withToken := func(who string) context.Context {
		return metadata.AppendToOutgoingContext(m.ctx, "authorization", "Bearer "+tenantToken(who))
	}

	t.Run("SPIFFE ID is the principal", func(t *testing.T) {
		conn := m.dial(t, netPayments, flinkCert, flinkKey)
		resp, err := whoami(m.ctx, conn)
		if err != nil {
			t.Fatalf("WhoAmI with flink's certificate: %v", err)
		}
		if resp.Principal != "flink" || resp.SpiffeId != flinkID || resp.Network != netPayments || resp.Roles["payments"] != "invoker" {
			t.Errorf("WhoAmI with flink's certificate = %v", resp)
		}
		// An invoker may not upload: the denial's record carries the
		// SPIFFE ID.
		_, err = udfhostv1.NewArtifactServiceClient(conn).CreateUploadURL(m.ctx, &udfhostv1.CreateUploadURLRequest{Env: "payments"})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("flink uploads: %v, want PERMISSION_DENIED", err)
		}
		found := false
		for _, r := range readAudit(t, m.audit) {
			if r.Type == audit.TypeAccessDenied && r.Actor == "flink" && r.SPIFFEID == flinkID && r.Network == netPayments {
				found = true
			}
		}
		if !found {
			t.Errorf("no access.denied record of flink with spiffe_id %s on %s", flinkID, netPayments)
		}
	})

	t.Run("token over TLS", func(t *testing.T) {
		resp, err := whoami(withToken("ana"), m.dial(t, netPublic, nil, nil))
		if err != nil || resp.Principal != "ana" || resp.SpiffeId != "" || resp.Network != netPublic {
			t.Errorf("WhoAmI as ana over TLS = %v, %v", resp, err)
		}
	})

	t.Run("token of the certificate's principal's only", func(t *testing.T) {
		_, err := whoami(withToken("ana"), m.dial(t, netPayments, flinkCert, flinkKey))
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), reasonOtherToken) || !strings.Contains(err.Error(), flinkID) {
			t.Errorf("ana's token with flink's certificate: %v, want UNAUTHENTICATED %q", err, reasonOtherToken)
		}
		_, err = whoami(metadata.AppendToOutgoingContext(m.ctx, "authorization", "Bearer "+tenantToken("stranger")), m.dial(t, netPayments, flinkCert, flinkKey))
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), reasonInvalid) {
			t.Errorf("an unknown token with flink's certificate: %v, want UNAUTHENTICATED %q", err, reasonInvalid)
		}
	})

	t.Run("unknown SPIFFE ID", func(t *testing.T) {
		const other = "spiffe://acme.example/ns/flink/sa/jobmanager"
		cert, key := m.ca.issue(certSpec{uris: []string{other}})
		conn := m.dial(t, netPublic, cert, key)
		_, err := whoami(m.ctx, conn)
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "no principal has SPIFFE ID "+other) {
			t.Errorf("a certificate of an unknown SPIFFE ID: %v, want UNAUTHENTICATED naming it", err)
		}
		if !m.authFailed(t, "no principal has SPIFFE ID "+other) {
			t.Errorf("no auth.failed record names the unknown SPIFFE ID")
		}
		// A token still authenticates the call.
		if resp, err := whoami(withToken("ana"), conn); err != nil || resp.Principal != "ana" || resp.SpiffeId != "" {
			t.Errorf("ana's token with an unknown SPIFFE ID's certificate = %v, %v", resp, err)
		}
	})

	for _, tc := range []struct {
		name     string
		cert     func() ([]byte, []byte)
		client   string // what the client's error says
		reason   string // the auth.failed record's
		grpcCode codes.Code
	}{
		{
			name: "another CA",
			cert: func() ([]byte, []byte) {
				return newTestCA(t, "someone else's CA").issue(certSpec{uris: []string{flinkID}})
			},
			client: reasonCertUnknownCA, reason: reasonCertUnknownCA, grpcCode: codes.Unauthenticated,
		},
		{
			name: "expired",
			cert: func() ([]byte, []byte) {
				return m.ca.issue(certSpec{uris: []string{flinkID}, notAfter: time.Now().Add(-time.Minute)})
			},
			client: reasonCertExpired, reason: reasonCertExpired, grpcCode: codes.Unauthenticated,
		},
		{
			name:   "no SPIFFE ID",
			cert:   func() ([]byte, []byte) { return m.ca.issue(certSpec{}) },
			client: reasonNoSPIFFEID, reason: reasonNoSPIFFEID, grpcCode: codes.Unauthenticated,
		},
		{
			name:   "not a SPIFFE URI",
			cert:   func() ([]byte, []byte) { return m.ca.issue(certSpec{uris: []string{"https://acme.example/flink"}}) },
			client: reasonNoSPIFFEID, reason: reasonNoSPIFFEID, grpcCode: codes.Unauthenticated,
		},
		{
			name: "two URI SANs",
			cert: func() ([]byte, []byte) {
				return m.ca.issue(certSpec{uris: []string{flinkID, "spiffe://acme.example/other"}})
			},
			client: reasonNoSPIFFEID, reason: reasonNoSPIFFEID, grpcCode: codes.Unauthenticated,
		},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			cert, key := tc.cert()
			// With a valid token too: the certificate is refused first.
			for _, ctx := range []context.Context{m.ctx, withToken("ana")} {
				_, err := whoami(ctx, m.dial(t, netPublic, cert, key))
				if status.Code(err) != tc.grpcCode || !strings.Contains(err.Error(), tc.client) {
					t.Errorf("WhoAmI with a certificate (%s): %v, want %s saying %q", tc.name, err, tc.grpcCode, tc.client)
				}
			}
			if !m.authFailed(t, tc.reason) {
				t.Errorf("no auth.failed record with reason %q", tc.reason)
			}
		})
	}

	t.Run("a private network's own client CA", func(t *testing.T) {
		cert, key := m.vault.issue(certSpec{uris: []string{vaultID}})
		resp, err := whoami(m.ctx, m.dial(t, netTreasury, cert, key))
		if err != nil || resp.Principal != "vault" || resp.SpiffeId != vaultID || resp.Network != netTreasury {
			t.Errorf("WhoAmI with vault's certificate on %s = %v, %v", netTreasury, resp, err)
		}
		// It replaces --client-ca there, and is no CA elsewhere.
		for _, tc := range []struct {
			network   string
			cert, key []byte
			what      string
		}{
			{netPublic, cert, key, "vault's certificate on the public network"},
			{netTreasury, flinkCert, flinkKey, "flink's certificate (--client-ca) on " + netTreasury},
		} {
			_, err := whoami(m.ctx, m.dial(t, tc.network, tc.cert, tc.key))
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), reasonCertUnknownCA) {
				t.Errorf("%s: %v, want UNAUTHENTICATED %q", tc.what, err, reasonCertUnknownCA)
			}
		}
	})

	t.Run("plaintext client", func(t *testing.T) {
		conn, err := grpc.NewClient(m.s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := whoami(withToken("ana"), conn); status.Code(err) != codes.Unavailable {
			t.Errorf("a plaintext client of a TLS server: %v, want UNAVAILABLE", err)
		}
	})
}

// TestNetworkCANeedsTLS: a policy network with its own client_ca is
// refused at start by a server without TLS.
func TestNetworkCANeedsTLS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (jailed workers, cgroups)")
	}
	p := tenantPolicy(policies.Private)
	p.Networks[netTreasury].ClientCAs = x509.NewCertPool()
	s := New(Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Policy: p, Logger: slog.New(slog.DiscardHandler)})
	err := s.Start(context.Background())
	if err == nil {
		s.Shutdown(context.Background())
	}
	if err == nil || !strings.Contains(err.Error(), `network "treasury-link" has a client_ca, but serve has no --tls-cert`) {
		t.Errorf("start: %v", err)
	}
}

// TestTLSConfig: the flags' combinations that cannot work are refused
// with what is missing.
func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	cert, key := ca.issue(certSpec{server: true})
	certF, keyF, caF := writeFile(t, dir, "c.pem", cert), writeFile(t, dir, "k.pem", key), writeFile(t, dir, "ca.pem", ca.pem)
	junk := writeFile(t, dir, "junk.pem", []byte("not PEM"))
	for _, tc := range []struct {
		cfg  Config
		want string // "" for a good configuration
	}{
		{Config{}, ""},
		{Config{TLSCert: certF, TLSKey: keyF}, ""},
		{Config{TLSCert: certF, TLSKey: keyF, ClientCA: caF}, ""},
		{Config{ClientCA: caF}, "--client-ca needs --tls-cert and --tls-key"},
		{Config{TLSCert: certF}, "both --tls-cert and --tls-key"},
		{Config{TLSCert: certF, TLSKey: caF}, "load the server certificate"},
		{Config{TLSCert: certF, TLSKey: keyF, ClientCA: junk}, "holds no PEM certificate"},
		{Config{TLSCert: certF, TLSKey: keyF, ClientCA: filepath.Join(dir, "missing")}, "read the client CA"},
	} {
		cfg, err := tc.cfg.tlsConfig()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		case tc.want == "" && tc.cfg.TLSCert != "" && (cfg == nil || cfg.MinVersion < tls.VersionTLS12):
			t.Errorf("%+v: TLS configuration %v", tc.cfg, cfg)
		case tc.cfg.ClientCA != "" && err == nil && (cfg.ClientAuth != tls.RequestClientCert || cfg.ClientCAs == nil):
			t.Errorf("%+v: client auth %v, want RequestClientCert with the client CA", tc.cfg, cfg.ClientAuth)
		}
	}
}

// TestPlaintextWarns: a server without TLS says once, when it starts,
// that it is a development setup; one with TLS does not.
func TestPlaintextWarns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (jailed workers, cgroups)")
	}
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	cert, key := ca.issue(certSpec{server: true})
	certF, keyF := writeFile(t, dir, "c.pem", cert), writeFile(t, dir, "k.pem", key)
	for _, tc := range []struct {
		name      string
		cert, key string
		warns     int
	}{{"plaintext", "", "", 1}, {"TLS", certF, keyF, 0}} {
		var logs strings.Builder
		s := New(Config{
			DataDir: filepath.Join(dir, tc.name), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(&logs, nil)), TLSCert: tc.cert, TLSKey: tc.key,
		})
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		cancel()
		if n := strings.Count(logs.String(), "development setup"); n != tc.warns {
			t.Errorf("%s: %d development-setup lines, want %d:\n%s", tc.name, n, tc.warns, logs.String())
		}
	}
}

// TestVerifiedCerts: a verified chain is remembered for its
// connection only until it expires; then it is refused.
func TestVerifiedCerts(t *testing.T) {
	ca := newTestCA(t, "ca")
	certPEM, _ := ca.issue(certSpec{uris: []string{flinkID}, notAfter: time.Now().Add(30 * time.Minute)})
	block, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	var c verifiedCerts
	now := time.Now()
	for _, tc := range []struct {
		at   time.Time
		want string // "" for verified
	}{
		{now, ""},
		{now.Add(time.Minute), ""}, // remembered
		{now.Add(31 * time.Minute), reasonCertExpired},
		{now, ""},
	} {
		err := c.verify(pool, []*x509.Certificate{leaf}, tc.at)
		if got := ""; err != nil {
			got = certReason(err)
			if got != tc.want {
				t.Errorf("at %v: %v (%s), want %q", tc.at.Sub(now), err, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("at %v: verified, want %q", tc.at.Sub(now), tc.want)
		}
	}
	if len(c.until) != 1 {
		t.Errorf("remembers %d chains, want 1", len(c.until))
	}
	other := newTestCA(t, "other")
	otherPEM, _ := other.issue(certSpec{uris: []string{flinkID}})
	block, _ = pem.Decode(otherPEM)
	otherLeaf, _ := x509.ParseCertificate(block.Bytes)
	if err := c.verify(pool, []*x509.Certificate{otherLeaf}, now); err == nil || certReason(err) != reasonCertUnknownCA {
		t.Errorf("another CA's certificate: %v", err)
	}
	// Remembered for its pool only.
	otherPool := x509.NewCertPool()
	otherPool.AddCert(other.cert)
	if err := c.verify(otherPool, []*x509.Certificate{leaf}, now); err == nil || certReason(err) != reasonCertUnknownCA {
		t.Errorf("the certificate against another pool: %v", err)
	}
}

// TestBadTLSLeavesNoDataDir: a TLS flag that cannot work stops Start
// before the data directory is created, so a typo leaves nothing behind.
func TestBadTLSLeavesNoDataDir(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := New(Config{DataDir: data, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", TLSCert: filepath.Join(dir, "c.pem")})
	err := s.Start(context.Background())
	if err == nil {
		s.Shutdown(context.Background())
	}
	if err == nil || !strings.Contains(err.Error(), "both --tls-cert and --tls-key") {
		t.Fatalf("start: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the refused start left %s behind (%v)", data, err)
	}
}
