package policies

import (
	"fmt"
	"net/textproto"
	"os"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// maxSecret bounds a connection secret.
const maxSecret = 8192

// reservedHeaders are set by the broker itself (framing, routing); a
// secret may not be injected as one of them.
var reservedHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer", "Proxy-Authorization", "Proxy-Connection", "Keep-Alive"}

// secret decodes secret_file or secret_env with secret_header. The value
// is never part of an error: messages name the file or variable only.
func (b *builder) secret(c *Connection, m map[string]field, n ast.Node, path string) error {
	sf, hasFile := m["secret_file"]
	se, hasEnv := m["secret_env"]
	hf, hasHeader := m["secret_header"]
	switch {
	case hasFile && hasEnv:
		return b.errAt(se.keyN, "%s.secret_env: a connection has at most one of secret_file and secret_env", path)
	case !hasFile && !hasEnv:
		if hasHeader {
			return b.errAt(hf.keyN, "%s.secret_header: needs secret_file or secret_env", path)
		}
		return nil
	case !hasHeader:
		return b.errAt(n, "%s.secret_header: required with a secret: the header the broker sets to it, e.g. Authorization", path)
	}
	hp := join(path, "secret_header")
	h, err := b.str(hf.value, hp)
	if err != nil {
		return err
	}
	if !validHeaderName(h) {
		return b.errAt(hf.value, "%s: %q is not an HTTP header name", hp, h)
	}
	h = textproto.CanonicalMIMEHeaderKey(h)
	if slices.Contains(reservedHeaders, h) {
		return b.errAt(hf.value, "%s: %s is set by the broker itself; choose another header", hp, h)
	}
	c.SecretHeader = h
	var v, srcPath string
	var src ast.Node
	if hasFile {
		fp := join(path, "secret_file")
		src, srcPath = sf.value, fp
		name, err := b.str(sf.value, fp)
		if err != nil {
			return err
		}
		if v, err = readSecret(b.dir, name); err != nil {
			return b.errAt(sf.value, "%s: %v", fp, err)
		}
	} else {
		ep := join(path, "secret_env")
		src, srcPath = se.value, ep
		name, err := b.str(se.value, ep)
		if err != nil {
			return err
		}
		raw, ok := os.LookupEnv(name)
		if !ok {
			return b.errAt(se.value, "%s: environment variable %s is not set", ep, name)
		}
		v = strings.TrimRight(raw, "\r\n")
	}
	if err := checkSecretValue(v); err != nil {
		return b.errAt(src, "%s: the secret %v", srcPath, err)
	}
	c.Secret = Secret{v: v}
	return nil
}

// readSecret reads a secret file as token files are read
// (readOwnerFile); the trailing newline is trimmed, nothing else.
func readSecret(dir, path string) (string, error) {
	raw, err := readOwnerFile(dir, path, "secret file", maxSecret)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(raw), "\r\n"), nil
}

// checkSecretValue refuses what cannot be a header value (empty, control
// characters, a newline that would split the request).
func checkSecretValue(v string) error {
	if v == "" {
		return fmt.Errorf("is empty")
	}
	if len(v) > maxSecret {
		return fmt.Errorf("is longer than %d bytes", maxSecret)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("holds a control character at byte %d; a header value cannot", i)
		}
	}
	return nil
}

// validHeaderName accepts an RFC 9110 token.
func validHeaderName(h string) bool {
	if h == "" || len(h) > 256 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}
