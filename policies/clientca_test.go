package policies

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestNetworkClientCA: a private network's client_ca, relative to the
// policy file, is loaded as its pool of client CAs; a network without
// one has none (serve's --client-ca applies).
func TestNetworkClientCA(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "payments CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "payments-ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Parse("p.yaml", []byte(head+`networks:
  - name: with
    listen: 127.0.0.1:0
    environments: [priv]
    client_ca: payments-ca.pem
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	if _, err := ca.Verify(x509.VerifyOptions{Roots: p.Networks["with"].ClientCAs}); err != nil {
		t.Errorf("the network's client CAs do not hold the file's CA: %v", err)
	}
	if p.Networks[PublicNetwork].ClientCAs != nil {
		t.Errorf("the public network has client CAs of its own")
	}
}
