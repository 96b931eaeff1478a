package policies

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/udfhost/udfhost/internal/names"
)

// Connection is a grant of egress: the functions of one environment that
// are bound to it may send the listed methods to one destination, through
// the host's egress broker, which adds the secret (never the guest).
//
// A destination is either a URL's scheme, host and port (Host set), or a
// scheme, an IP prefix and a set of ports (Prefix valid). All of it is
// part of the grant: the broker connects only to addresses it resolved
// and checked itself, and sets Host and SNI from the grant.
type Connection struct {
	Name string
	Env  string
	// Scheme is "http" or "https".
	Scheme string
	// Host is a DNS name or an IP literal (URL form), with Port.
	Host string
	Port uint16
	// Prefix and Ports are the CIDR form.
	Prefix netip.Prefix
	Ports  []uint16
	// Methods are upper-case HTTP methods, sorted.
	Methods []string
	// Cluster is the visibility of the system the destination belongs to:
	// a private environment may only read (GET, HEAD) a public cluster,
	// and a public environment may not use a private cluster at all.
	Cluster Visibility
	// SecretHeader names the request header the broker sets to Secret;
	// both empty when the connection has no secret.
	SecretHeader string
	Secret       Secret
}

// Secret is a credential the broker injects. It prints, logs and encodes
// as "[redacted]" so that it cannot leak through a log line, an error or
// an audit record by accident; Reveal is for the broker's request alone.
type Secret struct{ v string }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return s.v }

// IsSet reports whether there is a secret.
func (s Secret) IsSet() bool { return s.v != "" }

// String redacts the secret.
func (s Secret) String() string { return "[redacted]" }

// GoString redacts the secret (%#v).
func (s Secret) GoString() string { return "[redacted]" }

// MarshalText redacts the secret in every text encoding (JSON, YAML).
func (s Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// ReadMethods may be sent to a public cluster from a private environment:
// they read, they do not write (the access matrix's "read, but not write").
var ReadMethods = []string{"GET", "HEAD"}

// knownMethods are the methods a connection may grant.
var knownMethods = []string{"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}

// IsRead reports whether method only reads.
func IsRead(method string) bool { return slices.Contains(ReadMethods, method) }

// Destination is the connection's destination as the policy file writes
// it, e.g. "https://api.example.com:443" or "https://10.0.0.0/24 ports 443,8443".
func (c *Connection) Destination() string {
	if c.Host != "" {
		return c.Scheme + "://" + net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
	}
	ps := make([]string, len(c.Ports))
	for i, p := range c.Ports {
		ps[i] = strconv.Itoa(int(p))
	}
	return c.Scheme + "://" + c.Prefix.String() + " ports " + strings.Join(ps, ",")
}

// Allows reports whether the connection's grant covers a method.
func (c *Connection) Allows(method string) bool { return slices.Contains(c.Methods, method) }

// AllowsAddr reports whether addr:port is inside the grant's destination:
// for the URL form, the port; the address itself is checked against what
// the broker resolved (see EgressAddrAllowed). For the CIDR form, the
// prefix and the port list.
func (c *Connection) AllowsAddr(addr netip.Addr, port uint16) bool {
	if c.Host != "" {
		return port == c.Port
	}
	return c.Prefix.Contains(addr.Unmap()) && slices.Contains(c.Ports, port)
}

// Connection returns the named connection of env.
func (p *Policy) Connection(env, name string) (*Connection, error) {
	c, ok := p.Connections[env+"/"+name]
	if !ok {
		return nil, fmt.Errorf("connection %q in environment %q %w", name, env, ErrNotFound)
	}
	return c, nil
}

// CheckEgress applies the exfiltration rule to one request: from an
// environment of visibility from, method over c. It is checked at load
// (for every granted method) and again by the broker on every request.
func CheckEgress(from Visibility, c *Connection, method string) error {
	// The rule first, so that a refused write names it even where the
	// grant does not list the method either.
	switch {
	case from == Private && c.Cluster == Public && !IsRead(method):
		return fmt.Errorf("connection %q: a private environment may read a public cluster (GET, HEAD) but never write to it (%s)", c.Name, method)
	case from == Public && c.Cluster == Private:
		return fmt.Errorf("connection %q: a public environment may not use a private cluster", c.Name)
	case !c.Allows(method):
		return fmt.Errorf("connection %q grants %s, not %s", c.Name, strings.Join(c.Methods, ", "), method)
	}
	return nil
}

var connectionKeys = []string{"name", "environment", "destination", "ports", "methods", "cluster", "secret_file", "secret_env", "secret_header"}

func (b *builder) connection(n ast.Node, path string) error {
	m, err := b.entry(n, path, connectionKeys...)
	if err != nil {
		return err
	}
	c := &Connection{}
	if c.Name, err = b.name(names.Function, m["name"].value, join(path, "name")); err != nil {
		return err
	}
	ef, ok := m["environment"]
	if !ok {
		return b.errAt(n, "%s.environment: required: a connection belongs to exactly one environment", path)
	}
	if c.Env, err = b.str(ef.value, join(path, "environment")); err != nil {
		return err
	}
	env, ok := b.p.Environments[c.Env]
	if !ok {
		return b.errAt(ef.value, "%s.environment: no environment %s in this file", path, names.Quote(c.Env))
	}
	key := c.Env + "/" + c.Name
	if _, dup := b.p.Connections[key]; dup {
		return b.errAt(m["name"].value, "%s.name: connection %q is listed twice in environment %q", path, c.Name, c.Env)
	}
	if err := b.destination(c, m, n, path); err != nil {
		return err
	}
	if err := b.methods(c, m, n, path); err != nil {
		return err
	}
	cf, ok := m["cluster"]
	if !ok {
		return b.errAt(n, "%s.cluster: required: public or private, the visibility of the system the destination belongs to", path)
	}
	v, err := b.str(cf.value, join(path, "cluster"))
	if err != nil {
		return err
	}
	if v != string(Public) && v != string(Private) {
		return b.errAt(cf.value, "%s.cluster: want public or private, got %s", path, names.Quote(v))
	}
	c.Cluster = Visibility(v)
	if env.Visibility == Public && c.Cluster == Private {
		return b.errAt(cf.value, "%s.cluster: environment %q is public; a public environment may not use a private cluster", path, c.Env)
	}
	if env.Visibility == Private && c.Cluster == Public {
		for i, meth := range c.Methods {
			if !IsRead(meth) {
				return b.errAt(b.methodNode(m, i), "%s.methods: %s writes, and environment %q is private while the cluster is public: a private environment may read a public cluster (GET, HEAD) but never write to it", path, meth, c.Env)
			}
		}
	}
	slices.Sort(c.Methods)
	if err := b.secret(c, m, n, path); err != nil {
		return err
	}
	b.p.Connections[key] = c
	return nil
}

// destination decodes destination (and ports for the CIDR form).
func (b *builder) destination(c *Connection, m map[string]field, n ast.Node, path string) error {
	df, ok := m["destination"]
	dp := join(path, "destination")
	if !ok {
		return b.errAt(n, "%s: required: https://host:port, http://host:port, or http(s)://CIDR with ports", dp)
	}
	s, err := b.str(df.value, dp)
	if err != nil {
		return err
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme != "http" && scheme != "https" {
		return b.errAt(df.value, "%s: want http:// or https:// and a host, got %s", dp, names.Quote(s))
	}
	c.Scheme = scheme
	pf, hasPorts := m["ports"]
	if prefix, err := netip.ParsePrefix(rest); err == nil {
		if !hasPorts {
			return b.errAt(df.value, "%s: a CIDR destination needs ports: the list of ports it grants", dp)
		}
		if prefix.Masked() != prefix {
			return b.errAt(df.value, "%s: %s has host bits set; write %s", dp, prefix, prefix.Masked())
		}
		c.Prefix = prefix
		if err := b.checkRange(c, df.value, dp); err != nil {
			return err
		}
		return b.ports(c, pf, join(path, "ports"))
	}
	if hasPorts {
		return b.errAt(pf.keyN, "%s.ports: only a CIDR destination takes ports; a URL names its port", path)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return b.errAt(df.value, "%s: want %s://host:port with nothing after it, got %s", dp, scheme, names.Quote(s))
	}
	c.Host = strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return b.errAt(df.value, "%s: port %s is not a number in 1..65535", dp, names.Quote(port))
	}
	c.Port = uint16(p)
	if addr, err := netip.ParseAddr(c.Host); err == nil {
		c.Prefix = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		if err := b.checkRange(c, df.value, dp); err != nil {
			return err
		}
		c.Prefix = netip.Prefix{}
	} else if !validHostname(c.Host) {
		return b.errAt(df.value, "%s: host %s is neither an IP address nor a DNS name", dp, names.Quote(c.Host))
	}
	return nil
}

// checkRange refuses destinations no grant may name: cloud metadata
// services and link-local addresses (where they live), the unspecified
// and multicast ranges. Loopback and private ranges may be named
// explicitly (a test server, an internal cluster); the broker refuses them
// for any destination that does not.
func (b *builder) checkRange(c *Connection, n ast.Node, path string) error {
	for _, bad := range forbiddenRanges {
		if c.Prefix.Overlaps(bad.prefix) {
			return b.errAt(n, "%s: %s overlaps %s (%s), which no connection may reach", path, c.Prefix, bad.prefix, bad.why)
		}
	}
	return nil
}

type forbidden struct {
	prefix netip.Prefix
	why    string
}

// forbiddenRanges are never reachable through a connection.
var forbiddenRanges = []forbidden{
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local, home of cloud metadata services"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata service"},
	{netip.MustParsePrefix("0.0.0.0/8"), "this network, unspecified"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
}

// ForbiddenAddr reports why addr may never be reached, or "".
func ForbiddenAddr(addr netip.Addr) string {
	addr = addr.Unmap()
	for _, bad := range forbiddenRanges {
		if bad.prefix.Contains(addr) {
			return bad.why
		}
	}
	return ""
}

func (b *builder) ports(c *Connection, f field, path string) error {
	items, err := b.list(f.value, path)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return b.errAt(f.value, "%s: at least one port", path)
	}
	for i, it := range items {
		ip := index(path, i)
		v, err := b.integer(it, ip)
		if err != nil {
			return err
		}
		if v < 1 || v > 65535 {
			return b.errAt(it, "%s: port %d is not in 1..65535", ip, v)
		}
		if slices.Contains(c.Ports, uint16(v)) {
			return b.errAt(it, "%s: port %d is listed twice", ip, v)
		}
		c.Ports = append(c.Ports, uint16(v))
	}
	slices.Sort(c.Ports)
	return nil
}

func (b *builder) methods(c *Connection, m map[string]field, n ast.Node, path string) error {
	f, ok := m["methods"]
	mp := join(path, "methods")
	if !ok {
		return b.errAt(n, "%s: required: the HTTP methods granted, e.g. [GET, HEAD]", mp)
	}
	items, err := b.list(f.value, mp)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return b.errAt(f.value, "%s: at least one method", mp)
	}
	for i, it := range items {
		ip := index(mp, i)
		v, err := b.str(it, ip)
		if err != nil {
			return err
		}
		if !slices.Contains(knownMethods, v) {
			return b.errAt(it, "%s: unknown method %s; want one of %s (upper case)", ip, names.Quote(v), strings.Join(knownMethods, ", "))
		}
		if slices.Contains(c.Methods, v) {
			return b.errAt(it, "%s: %s is listed twice", ip, v)
		}
		c.Methods = append(c.Methods, v)
	}
	// File order until the exfiltration rule has named the method's
	// line (methodNode); connection sorts them after.
	return nil
}

// methodNode is the node of the i-th method as written, for errors.
func (b *builder) methodNode(m map[string]field, i int) ast.Node {
	items, err := b.list(m["methods"].value, "")
	if err != nil || i >= len(items) {
		return m["methods"].value
	}
	return items[i]
}

// validHostname accepts a DNS name of letters, digits, '-' and '.'.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
