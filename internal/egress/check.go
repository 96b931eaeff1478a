package egress

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/udfhost/udfhost/policies"
)

// Bounds on what a guest may put in a request besides its body.
const (
	maxPath        = 8192
	maxHeaders     = 32
	maxHeaderBytes = 16 << 10
)

// requestHeaders are the only headers a guest may send: content
// negotiation, caching preconditions and a correlation id. Everything
// else is refused, naming the header: Host (the broker sets it from the
// grant), credentials (Authorization, Cookie, Proxy-*: the secret is the
// connection's, not the guest's), hop-by-hop and framing headers
// (Connection, Transfer-Encoding, Content-Length, Upgrade, TE, Expect),
// and anything a destination might trust (X-Forwarded-*).
var requestHeaders = []string{
	"Accept", "Accept-Language", "Cache-Control", "Content-Type",
	"If-Match", "If-Modified-Since", "If-None-Match", "If-Unmodified-Since",
	"User-Agent", "X-Request-Id",
}

// responseHeaders are the only response headers the guest sees; the rest
// (Set-Cookie, hop-by-hop, anything that could echo a request header) is
// dropped.
var responseHeaders = []string{
	"Cache-Control", "Content-Language", "Content-Type", "Date", "Etag",
	"Expires", "Last-Modified", "Location", "Retry-After", "X-Request-Id",
}

// userAgent is sent when the guest names none.
const userAgent = "udfhost-egress/1"

// checkPath accepts an origin-form request target: "/" then printable
// ASCII without space, '#' or '\', not "//" (a scheme-relative URL that
// some servers and proxies read as a host), bounded. It returns the
// parsed path and query to put under the grant's scheme and host.
func checkPath(p string) (*url.URL, error) {
	switch {
	case p == "":
		return nil, fmt.Errorf("path is empty; it must start with \"/\"")
	case len(p) > maxPath:
		return nil, fmt.Errorf("path is %d bytes, more than %d", len(p), maxPath)
	case p[0] != '/':
		return nil, fmt.Errorf("path %.64q must start with \"/\": the scheme, host and port are the connection's", p)
	case strings.HasPrefix(p, "//"):
		return nil, fmt.Errorf("path %.64q starts with \"//\", which names a host", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '#' || c == '\\' {
			return nil, fmt.Errorf("path holds byte %#02x at %d; percent-encode it (no spaces, control characters, '#', '\\' or non-ASCII)", c, i)
		}
	}
	u, err := url.ParseRequestURI(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return nil, fmt.Errorf("path %.64q is not an origin-form request target", p)
	}
	return u, nil
}

// isToken accepts a method as the broker may quote it: 1..16 upper-case
// letters. (CheckEgress then allows only the connection's methods.)
func isToken(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 'A' || m[i] > 'Z' {
			return false
		}
	}
	return true
}

// checkHeaders copies the guest's headers the allow-list admits into a
// new header, refusing the request over any other, and over a header of
// the secret's name whatever the list says.
func checkHeaders(in http.Header, secretHeader string) (http.Header, error) {
	out := make(http.Header, len(in)+2)
	n, size := 0, 0
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first refused header is the same every time
	for _, k := range keys {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if secretHeader != "" && ck == secretHeader {
			return nil, fmt.Errorf("header %s is the connection's secret header; the broker sets it", ck)
		}
		if !slices.Contains(requestHeaders, ck) {
			return nil, fmt.Errorf("header %.64q may not be sent; allowed: %s", k, strings.Join(requestHeaders, ", "))
		}
		for _, v := range in[k] {
			if i := strings.IndexFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }); i >= 0 {
				return nil, fmt.Errorf("header %s holds a control character at byte %d", ck, i)
			}
			n++
			size += len(ck) + len(v)
			out[ck] = append(out[ck], v)
		}
	}
	if n > maxHeaders || size > maxHeaderBytes {
		return nil, fmt.Errorf("%d header values of %d bytes, more than %d values or %d bytes", n, size, maxHeaders, maxHeaderBytes)
	}
	return out, nil
}

// filterResponse keeps the allow-listed response headers whose values do
// not carry the secret.
func filterResponse(in http.Header, secret []string) http.Header {
	out := http.Header{}
	for _, k := range responseHeaders {
		for _, v := range in.Values(k) {
			if !containsAny(v, secret) {
				out.Add(k, v)
			}
		}
	}
	return out
}

// echoes are the forms of the secret a destination could echo back: the
// header value, and its credential without an auth scheme ("Bearer x" →
// "x"). An encoded echo (base64, JSON escapes) is not caught: a
// destination that transforms and reflects its own credential is one the
// operator granted.
func echoes(s policies.Secret) []string {
	v := s.Reveal()
	if v == "" {
		return nil
	}
	out := []string{v}
	if _, cred, ok := strings.Cut(v, " "); ok && len(cred) >= 8 {
		out = append(out, cred)
	}
	return out
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// special are ranges no destination reaches unless the grant names them
// explicitly: an IP literal inside one, or a CIDR lying wholly inside one.
// A DNS name that resolves into one is refused (unless the operator listed
// the range in Config.ResolvePrivate), and so is a wide CIDR that merely
// contains one.
var special = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
	{netip.MustParsePrefix("fc00::/7"), "unique local"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64, which embeds an IPv4 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64, which embeds an IPv4 address"},
	{netip.MustParsePrefix("2002::/16"), "6to4, which embeds an IPv4 address"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible, which embeds an IPv4 address"},
}

// checkAddr refuses addr unless the grant may reach it: never a
// forbidden address (policies.ForbiddenAddr); a special one only when
// named explicitly by the grant (named) or listed by the operator.
func checkAddr(addr netip.Addr, named netip.Prefix, operator []netip.Prefix) error {
	addr = addr.Unmap()
	if addr.Zone() != "" {
		return fmt.Errorf("address %s has a zone", addr)
	}
	if why := policies.ForbiddenAddr(addr); why != "" {
		return fmt.Errorf("address %s is %s, which no connection may reach", addr, why)
	}
	for _, sp := range special {
		if !sp.prefix.Contains(addr) {
			continue
		}
		if named.IsValid() && named.Bits() >= sp.prefix.Bits() && sp.prefix.Contains(named.Addr()) {
			return nil
		}
		for _, op := range operator {
			if op.Contains(addr) {
				return nil
			}
		}
		return fmt.Errorf("address %s is %s, and the connection does not name it", addr, sp.why)
	}
	return nil
}
