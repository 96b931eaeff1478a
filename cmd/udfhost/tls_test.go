package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/server"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/sandbox"
)

// The test binary doubles as the server's worker (it re-executes
// /proc/self/exe worker), as internal/server's tests do.
func init() {
	if len(os.Args) == 2 && os.Args[1] == "worker" {
		os.Exit(sandbox.WorkerMain())
	}
}

// issueCert writes a certificate (and its key) signed by parent/parentKey,
// or self-signed when parent is nil, to dir/name.pem and dir/name.key.
func issueCert(t *testing.T, dir, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.Subject = pkix.Name{CommonName: name}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestWhoAmIOverMTLS: `udfhost whoami --tls-ca --tls-cert --tls-key`
// against a server with --client-ca prints the principal of the
// certificate's SPIFFE ID; with --token and --tls-ca only, the token's.
func TestWhoAmIOverMTLS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (the server's jailed workers)")
	}
	dir := t.TempDir()
	ca, caKey := issueCert(t, dir, "ca", &x509.Certificate{IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	issueCert(t, dir, "server", &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, ca, caKey)
	const id = "spiffe://acme.example/ns/flink/sa/taskmanager"
	u, _ := url.Parse(id)
	issueCert(t, dir, "client", &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []*url.URL{u}}, ca, caKey)

	const tok = "ana-0123456789abcdef0123456789abcdef"
	sum := sha256.Sum256([]byte(tok))
	p := policies.Default()
	p.Principals = []*policies.Principal{
		{Name: "flink", SPIFFEID: id, Roles: map[string]policies.Role{"default": policies.RoleInvoker}},
		{Name: "ana", TokenSHA256: sum[:], Roles: map[string]policies.Role{"default": policies.RoleDeveloper}},
	}
	s := server.New(server.Config{
		DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Policy: p,
		Logger:  slog.New(slog.DiscardHandler),
		TLSCert: filepath.Join(dir, "server.pem"), TLSKey: filepath.Join(dir, "server.key"), ClientCA: filepath.Join(dir, "ca.pem"),
	})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.Shutdown(ctx)
	})
	for _, tc := range []struct {
		args []string
		want whoamiJSON
	}{
		{[]string{"--tls-cert", filepath.Join(dir, "client.pem"), "--tls-key", filepath.Join(dir, "client.key")}, whoamiJSON{Principal: "flink", SPIFFEID: id, Network: "public"}},
		{[]string{"--token", tok}, whoamiJSON{Principal: "ana", Network: "public"}},
	} {
		args := append([]string{"--addr", s.Addr(), "--data", filepath.Join(dir, "nowhere"), "--tls-ca", filepath.Join(dir, "ca.pem")}, tc.args...)
		out, err := runRoot(t, append(args, "whoami")...)
		if err != nil {
			t.Errorf("udfhost %s whoami: %v", strings.Join(tc.args, " "), err)
			continue
		}
		var got whoamiJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("whoami printed %q: %v", out, err)
		}
		if got.Principal != tc.want.Principal || got.SPIFFEID != tc.want.SPIFFEID || got.Network != tc.want.Network {
			t.Errorf("udfhost %s whoami = %+v, want %+v", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	// Plaintext against a TLS server fails; so does a half client
	// certificate.
	if _, err := runRoot(t, "--addr", s.Addr(), "--token", tok, "whoami"); err == nil {
		t.Error("plaintext whoami against a TLS server succeeded")
	}
	if _, err := runRoot(t, "--addr", s.Addr(), "--tls-cert", filepath.Join(dir, "client.pem"), "whoami"); err == nil || !strings.Contains(err.Error(), "both --tls-cert and --tls-key") {
		t.Errorf("--tls-cert without --tls-key: %v", err)
	}
}

// runRoot runs udfhost with args and returns what it printed on stdout.
func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	root := newRoot()
	root.SetArgs(args)
	root.SetErr(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	os.Stdout = stdout
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b), err
}
