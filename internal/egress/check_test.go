package egress

import (
	"net/netip"
	"strings"
	"testing"
)

// TestCheckAddr: forbidden addresses never pass; loopback, private and
// translating ranges pass only when the grant names them (an address
// inside, a prefix wholly inside) or the operator lists them.
func TestCheckAddr(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		addr     string
		named    string
		operator string
		want     string // "" passes
	}{
		{"93.184.216.34", "", "", ""},
		{"2606:2800:220:1::1", "", "", ""},
		{"169.254.169.254", "169.254.0.0/16", "0.0.0.0/0", "link-local"},
		{"::ffff:169.254.169.254", "", "", "link-local"},
		{"fd00:ec2::254", "fd00::/8", "", "cloud metadata"},
		{"0.0.0.0", "", "", "unspecified"},
		{"::", "", "", "unspecified"},
		{"224.0.0.1", "", "", "multicast"},
		{"127.0.0.1", "", "", "loopback"},
		{"127.0.0.1", "127.0.0.1/32", "", ""},
		{"127.0.0.5", "127.0.0.0/24", "", ""},
		{"127.0.0.5", "96.0.0.0/3", "", "loopback"},
		{"::1", "", "", "loopback"},
		{"::1", "::1/128", "", ""},
		{"10.1.2.3", "", "", "private"},
		{"10.1.2.3", "10.0.0.0/8", "", ""},
		{"10.1.2.3", "", "10.1.0.0/16", ""},
		{"10.2.0.1", "", "10.1.0.0/16", "private"},
		{"172.20.0.1", "", "", "private"},
		{"192.168.1.1", "", "", "private"},
		{"100.100.100.200", "", "", "CGNAT"},
		{"fd12::1", "", "", "unique local"},
		{"64:ff9b::7f00:1", "", "", "NAT64"},
		{"2002:a9fe:a9fe::1", "", "", "6to4"},
		{"::7f00:1", "", "", "IPv4-compatible"},
		{"fe80::1%eth0", "", "", "has a zone"},
	}
	for _, tc := range tests {
		var named netip.Prefix
		var op []netip.Prefix
		if tc.named != "" {
			named = p(tc.named)
		}
		if tc.operator != "" {
			op = append(op, p(tc.operator))
		}
		err := checkAddr(netip.MustParseAddr(tc.addr), named, op)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s (named %q, operator %q): %v", tc.addr, tc.named, tc.operator, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s (named %q, operator %q): %v; want %q", tc.addr, tc.named, tc.operator, err, tc.want)
		}
	}
}

// TestCheckPathAccepts: ordinary request targets pass unchanged.
func TestCheckPathAccepts(t *testing.T) {
	for _, p := range []string{"/", "/keys/k1", "/a%2Fb?x=1&y=%20", "/v1/items;matrix=1", "/~user/..%2f", "/?q=a:b@c"} {
		u, err := checkPath(p)
		if err != nil {
			t.Errorf("%q: %v", p, err)
			continue
		}
		if got := u.RequestURI(); got != p {
			t.Errorf("%q became %q", p, got)
		}
	}
}
