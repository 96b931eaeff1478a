package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// transport is how dial secures the connection: plaintext without TLS
// flags (as a development server serves), else TLS verifying the server
// with --tls-ca (the system's CAs when it is not given) and presenting
// --tls-cert/--tls-key as the client certificate when they are given.
func (g *globals) transport() (credentials.TransportCredentials, error) {
	if g.tlsCA == "" && g.tlsCert == "" && g.tlsKey == "" {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if g.tlsCA != "" {
		pem, err := os.ReadFile(g.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("read the server CA (--tls-ca): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server CA %s (--tls-ca) holds no PEM certificate", g.tlsCA)
		}
		cfg.RootCAs = pool
	}
	switch {
	case g.tlsCert != "" && g.tlsKey != "":
		cert, err := tls.LoadX509KeyPair(g.tlsCert, g.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("load the client certificate (--tls-cert %s, --tls-key %s): %w", g.tlsCert, g.tlsKey, err)
		}
		// Sent whatever CAs the server names: Go would otherwise leave
		// out a certificate of another CA without a word, and the call
		// fail for a missing token instead of the certificate.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	case g.tlsCert != "" || g.tlsKey != "":
		return nil, errors.New("a client certificate needs both --tls-cert and --tls-key")
	}
	return credentials.NewTLS(cfg), nil
}

// certOnly reports whether the client certificate alone authenticates
// the caller: one is given and no --token, so no token is sent (a token
// of another principal would have the call refused).
func (g *globals) certOnly() bool {
	return g.tlsCert != "" && strings.TrimSpace(g.token) == ""
}
