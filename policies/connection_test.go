package policies

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// issueExample is the connection of the issue that asked for connections,
// loaded as given (with the environment it names).
const issueExample = `org: acme
environments:
  - name: analytics
    visibility: public
connections:
  - name: lookup
    environment: analytics
    destination: http://127.0.0.1:18080   # scheme, host and port are all part of the grant
    methods: [GET, HEAD]
    cluster: public
    secret_file: secrets/lookup.token      # relative to the policy file; group/other-readable is refused
    secret_header: Authorization           # the file's content (trailing newline trimmed) becomes this header's value
`

const lookupSecret = "Bearer s3cr3t-lookup-token-0123456789"

func writeSecret(t *testing.T, dir, name, content string, mode os.FileMode) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestConnectionIssueExample(t *testing.T) {
	dir := t.TempDir()
	writeSecret(t, dir, "secrets/lookup.token", lookupSecret+"\n", 0o600)
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(issueExample), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(filepath.Join(dir, "p.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Connection("analytics", "lookup")
	if err != nil {
		t.Fatal(err)
	}
	if c.Scheme != "http" || c.Host != "127.0.0.1" || c.Port != 18080 || c.Cluster != Public ||
		strings.Join(c.Methods, ",") != "GET,HEAD" || c.SecretHeader != "Authorization" || c.Secret.Reveal() != lookupSecret {
		t.Fatalf("connection = %+v", c)
	}
	if got := c.Destination(); got != "http://127.0.0.1:18080" {
		t.Errorf("Destination() = %q", got)
	}
	// The secret never prints, whatever prints the connection.
	js, _ := json.Marshal(c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", *c), string(js), p.Summary()} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("secret printed: %s", s)
		}
	}
	if !strings.Contains(p.Summary(), "1 connection") {
		t.Errorf("Summary() = %q", p.Summary())
	}
	if _, err := p.Connection("analytics", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown connection: %v", err)
	}
}

func TestConnectionForms(t *testing.T) {
	const envs = "org: acme\nenvironments:\n  - {name: pub, visibility: public}\n  - {name: priv, visibility: private}\nconnections:\n"
	tests := []struct {
		name, item string
		check      func(*testing.T, *Connection)
	}{
		{"https default port", "{name: a, environment: pub, destination: \"https://API.example.com\", methods: [POST, GET], cluster: public}", func(t *testing.T, c *Connection) {
			if c.Host != "api.example.com" || c.Port != 443 || strings.Join(c.Methods, ",") != "GET,POST" || c.Secret.IsSet() {
				t.Errorf("%+v", c)
			}
		}},
		{"cidr with ports", "{name: a, environment: priv, destination: \"https://10.1.0.0/16\", ports: [8443, 443], methods: [GET, POST], cluster: private}", func(t *testing.T, c *Connection) {
			if c.Host != "" || c.Prefix.String() != "10.1.0.0/16" || fmt.Sprint(c.Ports) != "[443 8443]" {
				t.Errorf("%+v", c)
			}
			if !c.AllowsAddr(netip.MustParseAddr("10.1.2.3"), 443) || c.AllowsAddr(netip.MustParseAddr("10.2.0.1"), 443) || c.AllowsAddr(netip.MustParseAddr("10.1.2.3"), 80) {
				t.Error("AllowsAddr disagrees with the grant")
			}
			if c.Destination() != "https://10.1.0.0/16 ports 443,8443" {
				t.Errorf("Destination() = %q", c.Destination())
			}
		}},
		{"ipv6 literal", "{name: a, environment: pub, destination: \"http://[::1]:8080\", methods: [GET], cluster: public}", func(t *testing.T, c *Connection) {
			if c.Host != "::1" || c.Port != 8080 || c.Destination() != "http://[::1]:8080" {
				t.Errorf("%+v", c)
			}
		}},
		{"secret from the environment", "{name: a, environment: pub, destination: \"https://x.example\", methods: [GET], cluster: public, secret_env: UDFHOST_TEST_SECRET, secret_header: x-api-key}", func(t *testing.T, c *Connection) {
			if c.Secret.Reveal() != "k-123" || c.SecretHeader != "X-Api-Key" {
				t.Errorf("%+v %q", c, c.Secret.Reveal())
			}
		}},
		{"private environment reads a public cluster", "{name: a, environment: priv, destination: \"https://x.example\", methods: [GET, HEAD], cluster: public}", nil},
	}
	t.Setenv("UDFHOST_TEST_SECRET", "k-123\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(envs+"  - "+tc.item+"\n"), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Connections) != 1 {
				t.Fatalf("connections: %v", p.Connections)
			}
			for _, c := range p.Connections {
				if tc.check != nil {
					tc.check(t, c)
				}
			}
		})
	}
}

// TestConnectionErrors: each problem is one line at the node it is about.
func TestConnectionErrors(t *testing.T) {
	const envs = "org: acme\nenvironments:\n  - {name: pub, visibility: public}\n  - {name: priv, visibility: private}\nconnections:\n" // connections at line 5
	item := func(fields string) string { return envs + "  - name: c\n" + fields }
	base := "    environment: pub\n    destination: https://x.example\n    methods: [GET]\n    cluster: public\n"
	tests := []struct {
		name, yaml, want string
		secret           *tokenFile
	}{
		{"no environment", item("    destination: https://x.example\n    methods: [GET]\n    cluster: public\n"),
			"p.yaml:6:5: connections[0].environment: required: a connection belongs to exactly one environment", nil},
		{"unknown environment", item("    environment: nope\n    destination: https://x.example\n    methods: [GET]\n    cluster: public\n"),
			`p.yaml:7:18: connections[0].environment: no environment "nope" in this file`, nil},
		{"listed twice", envs + "  - {name: c, environment: pub, destination: \"https://x.example\", methods: [GET], cluster: public}\n  - {name: c, environment: pub, destination: \"https://y.example\", methods: [GET], cluster: public}\n",
			`p.yaml:7:12: connections[1].name: connection "c" is listed twice in environment "pub"`, nil},
		{"no scheme", item("    environment: pub\n    destination: x.example:443\n    methods: [GET]\n    cluster: public\n"),
			`p.yaml:8:18: connections[0].destination: want http:// or https:// and a host, got "x.example:443"`, nil},
		{"a path", item("    environment: pub\n    destination: https://x.example/api\n    methods: [GET]\n    cluster: public\n"),
			`p.yaml:8:18: connections[0].destination: want https://host:port with nothing after it, got "https://x.example/api"`, nil},
		{"userinfo", item("    environment: pub\n    destination: https://u:p@x.example\n    methods: [GET]\n    cluster: public\n"),
			`p.yaml:8:18: connections[0].destination: want https://host:port with nothing after it, got "https://u:p@x.example"`, nil},
		{"bad port", item("    environment: pub\n    destination: https://x.example:99999\n    methods: [GET]\n    cluster: public\n"),
			`p.yaml:8:18: connections[0].destination: port "99999" is not a number in 1..65535`, nil},
		{"metadata address", item("    environment: pub\n    destination: http://169.254.169.254\n    methods: [GET]\n    cluster: public\n"),
			"p.yaml:8:18: connections[0].destination: 169.254.169.254/32 overlaps 169.254.0.0/16 (link-local, home of cloud metadata services), which no connection may reach", nil},
		{"metadata inside a cidr", item("    environment: pub\n    destination: http://169.0.0.0/8\n    ports: [80]\n    methods: [GET]\n    cluster: public\n"),
			"p.yaml:8:18: connections[0].destination: 169.0.0.0/8 overlaps 169.254.0.0/16 (link-local, home of cloud metadata services), which no connection may reach", nil},
		{"ec2 ipv6 metadata", item("    environment: pub\n    destination: \"http://[fd00:ec2::254]\"\n    methods: [GET]\n    cluster: public\n"),
			"p.yaml:8:18: connections[0].destination: fd00:ec2::254/128 overlaps fd00:ec2::254/128 (a cloud metadata service), which no connection may reach", nil},
		{"cidr without ports", item("    environment: pub\n    destination: https://10.0.0.0/8\n    methods: [GET]\n    cluster: public\n"),
			"p.yaml:8:18: connections[0].destination: a CIDR destination needs ports: the list of ports it grants", nil},
		{"cidr host bits", item("    environment: pub\n    destination: https://10.0.0.1/8\n    ports: [443]\n    methods: [GET]\n    cluster: public\n"),
			"p.yaml:8:18: connections[0].destination: 10.0.0.1/8 has host bits set; write 10.0.0.0/8", nil},
		{"ports on a url", item("    environment: pub\n    destination: https://x.example\n    ports: [443]\n    methods: [GET]\n    cluster: public\n"),
			"p.yaml:9:5: connections[0].ports: only a CIDR destination takes ports; a URL names its port", nil},
		{"port out of range", item("    environment: pub\n    destination: https://10.0.0.0/8\n    ports: [0]\n    methods: [GET]\n    cluster: public\n"),
			"p.yaml:9:13: connections[0].ports[0]: port 0 is not in 1..65535", nil},
		{"lower-case method", item("    environment: pub\n    destination: https://x.example\n    methods: [get]\n    cluster: public\n"),
			`p.yaml:9:15: connections[0].methods[0]: unknown method "get"; want one of DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT (upper case)`, nil},
		{"no methods", item("    environment: pub\n    destination: https://x.example\n    methods: []\n    cluster: public\n"),
			"p.yaml:9:14: connections[0].methods: at least one method", nil},
		{"no cluster", item("    environment: pub\n    destination: https://x.example\n    methods: [GET]\n"),
			"p.yaml:6:5: connections[0].cluster: required: public or private, the visibility of the system the destination belongs to", nil},
		// The exfiltration rule, at load.
		{"private writes to public", item("    environment: priv\n    destination: https://x.example\n    methods: [GET, POST]\n    cluster: public\n"),
			`p.yaml:9:20: connections[0].methods: POST writes, and environment "priv" is private while the cluster is public: a private environment may read a public cluster (GET, HEAD) but never write to it`, nil},
		{"public uses private", item("    environment: pub\n    destination: https://x.example\n    methods: [GET]\n    cluster: private\n"),
			`p.yaml:10:14: connections[0].cluster: environment "pub" is public; a public environment may not use a private cluster`, nil},
		// Secrets: their value never appears.
		{"secret without header", item(base + "    secret_file: s\n"),
			"p.yaml:6:5: connections[0].secret_header: required with a secret: the header the broker sets to it, e.g. Authorization", &tokenFile{"hush-hush", 0o600}},
		{"header without secret", item(base + "    secret_header: Authorization\n"),
			"p.yaml:11:5: connections[0].secret_header: needs secret_file or secret_env", nil},
		{"both secrets", item(base + "    secret_file: s\n    secret_env: X\n    secret_header: Authorization\n"),
			"p.yaml:12:5: connections[0].secret_env: a connection has at most one of secret_file and secret_env", &tokenFile{"hush-hush", 0o600}},
		{"group-readable secret", item(base + "    secret_file: s\n    secret_header: Authorization\n"),
			"p.yaml:11:18: connections[0].secret_file: secret file DIR/s is readable or writable by group or others (mode 0640); chmod 600 it", &tokenFile{"hush-hush", 0o640}},
		{"missing secret file", item(base + "    secret_file: s\n    secret_header: Authorization\n"),
			"p.yaml:11:18: connections[0].secret_file: secret file: open DIR/s: no such file or directory", nil},
		{"secret with a newline inside", item(base + "    secret_file: s\n    secret_header: Authorization\n"),
			"p.yaml:11:18: connections[0].secret_file: the secret holds a control character at byte 4; a header value cannot", &tokenFile{"hush\nX-Evil: 1\n", 0o600}},
		{"unset variable", item(base + "    secret_env: UDFHOST_NO_SUCH_VAR\n    secret_header: Authorization\n"),
			"p.yaml:11:17: connections[0].secret_env: environment variable UDFHOST_NO_SUCH_VAR is not set", nil},
		{"reserved header", item(base + "    secret_file: s\n    secret_header: host\n"),
			"p.yaml:12:20: connections[0].secret_header: Host is set by the broker itself; choose another header", &tokenFile{"hush-hush", 0o600}},
		{"bad header", item(base + "    secret_file: s\n    secret_header: \"a b\"\n"),
			`p.yaml:12:20: connections[0].secret_header: "a b" is not an HTTP header name`, &tokenFile{"hush-hush", 0o600}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.secret != nil {
				writeSecret(t, dir, "s", tc.secret.content, tc.secret.mode)
			}
			_, err := Parse("p.yaml", []byte(tc.yaml), dir)
			got := ""
			if err != nil {
				got = strings.ReplaceAll(err.Error(), dir, "DIR")
				if strings.Contains(got, "hush") {
					t.Errorf("the secret is in the message: %s", got)
				}
			}
			if got != tc.want {
				t.Errorf("Parse:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestCheckEgress is the exfiltration rule as the broker applies it on
// every request: the table of docs/CONNECTORS.md.
func TestCheckEgress(t *testing.T) {
	all := []string{"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}
	tests := []struct {
		from, cluster Visibility
		method        string
		ok            bool
	}{
		{Public, Public, "GET", true}, {Public, Public, "POST", true},
		{Private, Private, "POST", true}, {Private, Private, "GET", true},
		{Private, Public, "GET", true}, {Private, Public, "HEAD", true},
		{Private, Public, "POST", false}, {Private, Public, "PUT", false}, {Private, Public, "PATCH", false}, {Private, Public, "DELETE", false}, {Private, Public, "OPTIONS", false},
		{Public, Private, "GET", false}, {Public, Private, "POST", false},
	}
	for _, tc := range tests {
		c := &Connection{Name: "c", Methods: all, Cluster: tc.cluster}
		err := CheckEgress(tc.from, c, tc.method)
		if (err == nil) != tc.ok {
			t.Errorf("%s environment, %s cluster, %s: %v, want allowed=%v", tc.from, tc.cluster, tc.method, err, tc.ok)
		}
	}
	c := &Connection{Name: "c", Methods: []string{"GET"}, Cluster: Public}
	if err := CheckEgress(Public, c, "POST"); err == nil || !strings.Contains(err.Error(), "grants GET, not POST") {
		t.Errorf("a method not granted: %v", err)
	}
}

func TestForbiddenAddr(t *testing.T) {
	for addr, bad := range map[string]bool{
		"169.254.169.254": true, "fd00:ec2::254": true, "fe80::1": true, "0.0.0.0": true, "::ffff:169.254.169.254": true,
		"127.0.0.1": false, "10.0.0.1": false, "8.8.8.8": false, "::1": false,
	} {
		if got := ForbiddenAddr(netip.MustParseAddr(addr)) != ""; got != bad {
			t.Errorf("ForbiddenAddr(%s) = %v, want %v", addr, got, bad)
		}
	}
}
