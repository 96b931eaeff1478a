package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/udfhost/udfhost/policies"
)

// target is where a request goes before DNS: a name and port (URL form
// with a DNS name), or an address already checked against the grant.
type target struct {
	name  string // DNS name, or "" when addr is set
	addr  netip.AddrPort
	named netip.Prefix // what the grant names explicitly, for checkAddr
	port  uint16
}

// hostHeader is the Host the destination sees: the grant's host (or the
// CIDR address chosen), with the port unless it is the scheme's default.
func (t target) hostHeader(scheme string) string {
	host := t.name
	if host == "" {
		host = t.addr.Addr().String()
	}
	if p := map[string]uint16{"http": 80, "https": 443}[scheme]; p == t.port {
		if t.name == "" && t.addr.Addr().Is6() {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(int(t.port)))
}

func targetOf(conn *policies.Connection, guest netip.AddrPort) (target, error) {
	if conn.Host != "" {
		if guest.IsValid() || guest.Port() != 0 {
			return target{}, fmt.Errorf("the connection names its host; a request may not choose an address")
		}
		if a, err := netip.ParseAddr(conn.Host); err == nil {
			a = a.Unmap()
			return target{addr: netip.AddrPortFrom(a, conn.Port), named: netip.PrefixFrom(a, a.BitLen()), port: conn.Port}, nil
		}
		return target{name: conn.Host, port: conn.Port}, nil
	}
	if !guest.Addr().IsValid() {
		return target{}, fmt.Errorf("a CIDR connection (%s) needs the request to choose an address inside it", conn.Destination())
	}
	a, port := guest.Addr().Unmap(), guest.Port()
	if port == 0 && len(conn.Ports) == 1 {
		port = conn.Ports[0]
	}
	if !conn.AllowsAddr(a, port) {
		return target{}, fmt.Errorf("address %s is outside the grant %s", netip.AddrPortFrom(a, port), conn.Destination())
	}
	return target{addr: netip.AddrPortFrom(a, port), named: conn.Prefix, port: port}, nil
}

// pick resolves t if it is a name and returns the one address the request
// will be sent to, every address of the answer checked: one bad address
// refuses the request (an answer mixing a public and a metadata address is
// an attack, not a fallback).
func (b *Broker) pick(ctx context.Context, c *call, t target) (netip.AddrPort, error) {
	if t.name == "" {
		if err := checkAddr(t.addr.Addr(), t.named, nil); err != nil {
			return netip.AddrPort{}, c.err(ErrDenied, "%v", err)
		}
		return t.addr, nil
	}
	addrs, err := b.cfg.Resolver.LookupNetIP(ctx, "ip", t.name)
	if err != nil {
		return netip.AddrPort{}, c.err(ErrUnavailable, "resolving %s: %v", t.name, err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, c.err(ErrUnavailable, "resolving %s: no addresses", t.name)
	}
	for _, a := range addrs {
		if err := checkAddr(a, netip.Prefix{}, b.cfg.ResolvePrivate); err != nil {
			return netip.AddrPort{}, c.err(ErrDenied, "%s resolves to a refused address: %v", t.name, err)
		}
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), t.port), nil
}
