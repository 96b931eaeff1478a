package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/udfhost/udfhost/internal/names"
)

// MinTokenLen is the shortest bearer token a policy accepts, as for the
// data dir's admin token.
const MinTokenLen = 32

// maxTokenFile bounds what is read of a token file.
const maxTokenFile = 4096

// credentials are the ways a principal is known; it has exactly one.
var credentials = []string{"token_file", "token_sha256", "spiffe_id"}

// roleNames lists the roles in the order messages show them.
var roleNames = []Role{RoleAdmin, RoleDeveloper, RoleInvoker, RoleAuditor}

func (b *builder) principal(n ast.Node, path string) error {
	m, err := b.entry(n, path, "name", "token_file", "token_sha256", "spiffe_id", "roles")
	if err != nil {
		return err
	}
	name, err := b.name(names.Env, m["name"].value, join(path, "name"))
	if err != nil {
		return err
	}
	// The server is the actor "udfhost" of its own audit records; a
	// principal of that name could pass for it.
	if name == ReservedPrincipal {
		return b.errAt(m["name"].value, "%s.name: %q is the server's own name in the audit log; choose another", path, name)
	}
	for _, other := range b.p.Principals {
		if other.Name == name {
			return b.errAt(m["name"].value, "%s.name: principal %q is listed twice", path, name)
		}
	}
	pr := &Principal{Name: name, Roles: map[string]Role{}}
	// The credential: the first one in file order; a second is refused.
	var cred *field
	for _, f := range b.orderedFields(n) {
		if !slices.Contains(credentials, f.key) {
			continue
		}
		if cred != nil {
			return b.errAt(f.keyN, "%s.%s: a principal has exactly one of %s; this one already has %s", path, f.key, strings.Join(credentials, ", "), cred.key)
		}
		cred = &f
	}
	if cred == nil {
		return b.errAt(n, "%s: principal %q needs exactly one of %s", path, name, strings.Join(credentials, ", "))
	}
	cp := join(path, cred.key)
	v, err := b.str(cred.value, cp)
	if err != nil {
		return err
	}
	switch cred.key {
	case "token_file":
		tok, err := readToken(b.dir, v)
		if err != nil {
			return b.errAt(cred.value, "%s: %v", cp, err)
		}
		sum := sha256.Sum256([]byte(tok))
		pr.TokenSHA256 = sum[:]
	case "token_sha256":
		sum, err := hex.DecodeString(v)
		if err != nil || len(sum) != sha256.Size {
			return b.errAt(cred.value, "%s: want the 64 hex digits of a sha256, got %s", cp, names.Quote(v))
		}
		pr.TokenSHA256 = sum
	case "spiffe_id":
		id, err := spiffeid.FromString(v)
		if err != nil {
			return b.errAt(cred.value, "%s: not a SPIFFE ID (%v): %s", cp, err, names.Quote(v))
		}
		pr.SPIFFEID = id.String()
		if other, dup := b.spiffeIDs[pr.SPIFFEID]; dup {
			return b.errAt(cred.value, "%s: principal %q has the same SPIFFE ID", cp, other)
		}
		b.spiffeIDs[pr.SPIFFEID] = name
	}
	if pr.TokenSHA256 != nil {
		key := string(pr.TokenSHA256)
		if other, dup := b.tokens[key]; dup {
			return b.errAt(cred.value, "%s: principal %q has the same token", cp, other)
		}
		b.tokens[key] = name
	}
	rf, ok := m["roles"]
	if !ok {
		return b.errAt(n, "%s.roles: required: {environment or \"*\": role}, e.g. {\"*\": auditor}", path)
	}
	if err := b.roles(pr, rf.value, join(path, "roles")); err != nil {
		return err
	}
	b.p.Principals = append(b.p.Principals, pr)
	return nil
}

// orderedFields is fields without a known list (the entry's keys were
// checked already), in file order.
func (b *builder) orderedFields(n ast.Node) []field {
	fs, _ := b.fields(n, "")
	return fs
}

func (b *builder) roles(pr *Principal, n ast.Node, path string) error {
	fs, err := b.fields(n, path)
	if err != nil {
		return err
	}
	if len(fs) == 0 {
		return b.errAt(n, "%s: a principal needs a role in at least one environment", path)
	}
	for _, f := range fs {
		if f.key != AllEnvironments {
			if _, ok := b.p.Environments[f.key]; !ok {
				return b.errAt(f.keyN, "%s: no environment %s in this file (\"*\" is every environment)", join(path, pathKey(f.key)), names.Quote(f.key))
			}
		}
		fp := join(path, pathKey(f.key))
		v, err := b.str(f.value, fp)
		if err != nil {
			return err
		}
		if !slices.Contains(roleNames, Role(v)) {
			return b.errAt(f.value, "%s: unknown role %s; want admin, developer, invoker or auditor", fp, names.Quote(v))
		}
		pr.Roles[f.key] = Role(v)
	}
	return nil
}

// readToken returns the token in a file (readOwnerFile): the token,
// stripped of surrounding whitespace as clients strip it, at least
// MinTokenLen printable characters.
func readToken(dir, path string) (string, error) {
	b, err := readOwnerFile(dir, path, "token file", maxTokenFile)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLen {
		return "", fmt.Errorf("token file %s holds %d characters; a token has at least %d", resolvePath(dir, path), len(tok), MinTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return "", fmt.Errorf("token file %s: a token is printable ASCII without spaces", resolvePath(dir, path))
		}
	}
	return tok, nil
}

// readOwnerFile reads a credential file (what names it in messages):
// relative paths are taken from dir; it must be a regular file only its
// owner may read or write (as the data dir's admin token), of at most
// limit bytes.
func readOwnerFile(dir, path, what string, limit int) ([]byte, error) {
	path = resolvePath(dir, path)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is readable or writable by group or others (mode %#o); chmod 600 it", what, path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s %s is larger than %d bytes", what, path, limit)
	}
	return b, nil
}

// resolvePath takes a relative path from dir.
func resolvePath(dir, path string) string {
	if !filepath.IsAbs(path) {
		return filepath.Join(dir, path)
	}
	return path
}
