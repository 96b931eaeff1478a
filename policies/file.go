package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/udfhost/udfhost/internal/names"
)

// Load reads and validates the policy file at path (see docs/POLICY.md).
// Token files are read relative to its directory. Every error is one
// line, an *Error: FILE:LINE:COL: problem.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	return Parse(path, data, filepath.Dir(path))
}

// Parse validates a policy file's content; name is what messages call the
// file, dir where its relative token_file paths are.
func Parse(name string, data []byte, dir string) (*Policy, error) {
	d, root, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	b := &builder{doc: d, dir: dir, seenNet: map[string]bool{}, listen: map[string]string{},
		tokens: map[string]string{}, spiffeIDs: map[string]string{}, p: &Policy{
			Environments: map[string]*Environment{},
			Pools:        map[string]*Pool{},
			Edge:         DefaultEdge(),
			Networks:     map[string]*Network{PublicNetwork: {Name: PublicNetwork}},
			Connections:  map[string]*Connection{},
			File:         name,
			FileSHA256:   hex.EncodeToString(sum[:]),
			visibilityAt: map[string]at{},
		}}
	if err := b.build(root); err != nil {
		return nil, err
	}
	return b.p, nil
}

// builder fills a Policy from a file's tree, section by section; each
// section may refer only to the ones before it.
type builder struct {
	*doc
	dir string
	p   *Policy
	// seenNet holds the networks listed so far (the public one is in
	// Policy.Networks from the start); listen maps a private network's
	// address to its name.
	seenNet map[string]bool
	listen  map[string]string
	// tokens and spiffeIDs map credentials to the principal that has them.
	tokens    map[string]string
	spiffeIDs map[string]string
}

var topKeys = []string{"org", "environments", "networks", "pools", "principals", "connections"}

func (b *builder) build(root ast.Node) error {
	switch b.resolve(root).(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
	default:
		return b.errAt(root, "a policy file is a mapping of %s; got %s", strings.Join(topKeys, ", "), kindOf(b.resolve(root)))
	}
	fs, err := b.fields(root, "", topKeys...)
	if err != nil {
		return err
	}
	byKey := map[string]field{}
	for _, f := range fs {
		byKey[f.key] = f
	}
	org, ok := byKey["org"]
	if !ok {
		return b.errAt(root, "org: required; it %s", names.Env.Rule)
	}
	if b.p.Org, err = b.name(names.Env, org.value, "org"); err != nil {
		return err
	}
	envs, ok := byKey["environments"]
	if !ok {
		return b.errAt(root, "environments: required: at least one")
	}
	steps := []struct {
		key  string
		each func(ast.Node, string) error
	}{
		{"environments", b.environment},
		{"networks", b.network},
		{"pools", b.pool},
		{"principals", b.principal},
		{"connections", b.connection},
	}
	for _, s := range steps {
		f, ok := byKey[s.key]
		if !ok {
			continue
		}
		items, err := b.list(f.value, s.key)
		if err != nil {
			return err
		}
		for i, it := range items {
			if err := s.each(it, index(s.key, i)); err != nil {
				return err
			}
		}
		if s.key == "environments" && len(b.p.Environments) == 0 {
			return b.errAt(envs.value, "environments: required: at least one")
		}
	}
	return nil
}

// name decodes a name of kind k.
func (b *builder) name(k names.Kind, n ast.Node, path string) (string, error) {
	s, err := b.str(n, path)
	if err != nil {
		return "", err
	}
	if k.Check(s) != nil {
		return "", b.errAt(n, "%s: %s, got %s", path, k.Rule, names.Quote(s))
	}
	return s, nil
}

// entry decodes a list item's fields; name must be among them.
func (b *builder) entry(n ast.Node, path string, known ...string) (map[string]field, error) {
	fs, err := b.fields(n, path, known...)
	if err != nil {
		return nil, err
	}
	m := make(map[string]field, len(fs))
	for _, f := range fs {
		m[f.key] = f
	}
	if _, ok := m["name"]; !ok {
		return nil, b.errAt(n, "%s.name: required", path)
	}
	return m, nil
}

func (b *builder) environment(n ast.Node, path string) error {
	m, err := b.entry(n, path, "name", "visibility")
	if err != nil {
		return err
	}
	name, err := b.name(names.Env, m["name"].value, join(path, "name"))
	if err != nil {
		return err
	}
	if _, dup := b.p.Environments[name]; dup {
		return b.errAt(m["name"].value, "%s.name: environment %q is listed twice", path, name)
	}
	vf, ok := m["visibility"]
	if !ok {
		return b.errAt(n, "%s.visibility: required: public or private (private is irreversible)", path)
	}
	v, err := b.str(vf.value, join(path, "visibility"))
	if err != nil {
		return err
	}
	if v != string(Public) && v != string(Private) {
		return b.errAt(vf.value, "%s.visibility: want public or private, got %s", path, names.Quote(v))
	}
	b.p.Environments[name] = &Environment{Name: name, Visibility: Visibility(v)}
	line, col := position(vf.value)
	b.p.visibilityAt[name] = at{line, col, join(path, "visibility")}
	return nil
}

func (b *builder) network(n ast.Node, path string) error {
	m, err := b.entry(n, path, "name", "listen", "environments", "client_ca")
	if err != nil {
		return err
	}
	name, err := b.name(names.Env, m["name"].value, join(path, "name"))
	if err != nil {
		return err
	}
	if b.seenNet[name] {
		return b.errAt(m["name"].value, "%s.name: network %q is listed twice", path, name)
	}
	b.seenNet[name] = true
	if name == PublicNetwork {
		for _, k := range []string{"listen", "environments", "client_ca"} {
			if f, ok := m[k]; ok {
				return b.errAt(f.keyN, "%s.%s: the public network is served on --listen and reaches every environment the matrix allows; it takes no %s", path, k, k)
			}
		}
		return nil
	}
	lf, ok := m["listen"]
	if !ok {
		return b.errAt(n, "%s.listen: required: the host:port a private network is served on", path)
	}
	addr, err := b.str(lf.value, join(path, "listen"))
	if err != nil {
		return err
	}
	if err := checkListen(addr); err != nil {
		return b.errAt(lf.value, "%s.listen: %v", path, err)
	}
	for other, on := range b.listen {
		if sameAddress(addr, other) {
			return b.errAt(lf.value, "%s.listen: address %s is already network %q's (%s)", path, addr, on, other)
		}
	}
	b.listen[addr] = name
	ef, ok := m["environments"]
	if !ok {
		return b.errAt(n, "%s.environments: required: the private environments this network serves", path)
	}
	items, err := b.list(ef.value, join(path, "environments"))
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return b.errAt(ef.value, "%s.environments: a private network serves at least one private environment", path)
	}
	nw := &Network{Name: name, Listen: addr}
	for i, it := range items {
		ip := index(join(path, "environments"), i)
		env, err := b.str(it, ip)
		if err != nil {
			return err
		}
		e, ok := b.p.Environments[env]
		switch {
		case !ok:
			return b.errAt(it, "%s: no environment %s in this file", ip, names.Quote(env))
		case e.Visibility != Private:
			return b.errAt(it, "%s: environment %q is public; a private network serves only private environments (the public network reaches public ones)", ip, env)
		case slices.Contains(nw.Environments, env):
			return b.errAt(it, "%s: environment %q is listed twice", ip, env)
		}
		nw.Environments = append(nw.Environments, env)
	}
	if f, ok := m["client_ca"]; ok {
		cp := join(path, "client_ca")
		v, err := b.str(f.value, cp)
		if err != nil {
			return err
		}
		if nw.ClientCAs, err = readClientCA(b.dir, v); err != nil {
			return b.errAt(f.value, "%s: %v", cp, err)
		}
	}
	b.p.Networks[name] = nw
	return nil
}

// sameAddress reports whether two checked host:port addresses would
// collide: the same port on the same host, or on any host when one of
// them listens on every address. Port 0 (any free port) never collides.
// Names are compared as written, not resolved.
func sameAddress(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb || pa == "0" {
		return false
	}
	every := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	return ha == hb || every(ha) || every(hb)
}

// checkListen accepts host:port with a numeric port (0: any free port).
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, got %s", names.Quote(addr))
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %s is not a number in 0..65535", names.Quote(port))
	} else if n == 0 && host == "" {
		return fmt.Errorf("give a host for port 0, e.g. 127.0.0.1:0")
	}
	return nil
}

func (b *builder) pool(n ast.Node, path string) error {
	m, err := b.entry(n, path, poolKeys()...)
	if err != nil {
		return err
	}
	name, err := b.name(names.Pool, m["name"].value, join(path, "name"))
	if err != nil {
		return err
	}
	ef, ok := m["environment"]
	if !ok {
		return b.errAt(n, "%s.environment: required: a pool belongs to exactly one environment", path)
	}
	env, err := b.str(ef.value, join(path, "environment"))
	if err != nil {
		return err
	}
	if _, ok := b.p.Environments[env]; !ok {
		return b.errAt(ef.value, "%s.environment: no environment %s in this file", path, names.Quote(env))
	}
	key := env + "/" + name
	if _, dup := b.p.Pools[key]; dup {
		return b.errAt(m["name"].value, "%s.name: pool %q is listed twice in environment %q", path, name, env)
	}
	pl := defaultPool()
	pl.Name, pl.Env = name, env
	if f, ok := m["interrupt"]; ok {
		v, err := b.str(f.value, join(path, "interrupt"))
		if err != nil {
			return err
		}
		if v != string(InterruptProcess) && v != string(InterruptWasm) {
			return b.errAt(f.value, "%s.interrupt: want process or wasm, got %s", path, names.Quote(v))
		}
		pl.Interrupt = Interrupt(v)
	}
	for i := range poolLimits {
		l := &poolLimits[i]
		if f, ok := m[l.key]; ok {
			if err := l.set(b.doc, &pl, f.value, join(path, l.key)); err != nil {
				return err
			}
		}
	}
	b.p.Pools[key] = &pl
	return nil
}
