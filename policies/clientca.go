package policies

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// maxClientCAFile bounds what is read of a client_ca file.
const maxClientCAFile = 1 << 20

// readClientCA reads a private network's client_ca: PEM CA certificates,
// the path relative to dir (the policy file's directory).
func readClientCA(dir, path string) (*x509.CertPool, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxClientCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	if len(b) > maxClientCAFile {
		return nil, fmt.Errorf("client CA %s is larger than %d bytes", path, maxClientCAFile)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("client CA %s holds no PEM certificate", path)
	}
	return pool, nil
}
