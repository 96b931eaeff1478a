package server

import (
	"context"
	"fmt"
	"net"
	"sort"

	"google.golang.org/grpc/peer"

	"github.com/udfhost/udfhost/policies"
)

// A request's network is the listener it arrived on: the public network
// is served on Config.Listen, each private network of the policy on its
// own Listen address, all by the one gRPC server. Each listener tags the
// connections it accepts with its network's name in their local address,
// which gRPC hands every call as peer.LocalAddr; nothing the client sends
// can change it.

// networkListener tags every connection it accepts with network.
type networkListener struct {
	net.Listener
	network string
}

func (l networkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &networkConn{Conn: c, local: networkAddr{Addr: c.LocalAddr(), network: l.network}}, nil
}

// networkConn is an accepted connection whose local address names the
// network it was accepted on.
type networkConn struct {
	net.Conn
	local networkAddr
}

func (c *networkConn) LocalAddr() net.Addr { return c.local }

// networkAddr is a local address with the network of its listener; it
// prints as the address.
type networkAddr struct {
	net.Addr
	network string
}

// networkOf is the network the call in ctx arrived on. A connection no
// listener tagged counts as the public network's, the one that reaches
// nothing private.
func networkOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		if a, ok := p.LocalAddr.(networkAddr); ok {
			return a.network
		}
	}
	return policies.PublicNetwork
}

// privateListener is the listener of one private network.
type privateListener struct {
	network string
	ln      net.Listener
}

// listenPrivate binds the listener of every private network of the
// policy, in name order.
func (s *Server) listenPrivate() error {
	var names []string
	policy := s.policy.Load()
	for name, n := range policy.Networks {
		if n.Public() {
			continue // served on Config.Listen
		}
		if n.Listen == "" {
			return fmt.Errorf("private network %q has no listen address", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ln, err := net.Listen("tcp", policy.Networks[name].Listen)
		if err != nil {
			return fmt.Errorf("listen for private network %q: %w", name, err)
		}
		s.privateLns = append(s.privateLns, privateListener{network: name, ln: ln})
	}
	return nil
}

// NetworkAddr is the address the named network's listener is bound to,
// or "" if the server has no such network.
func (s *Server) NetworkAddr(network string) string {
	if network == policies.PublicNetwork {
		return s.Addr()
	}
	for _, p := range s.privateLns {
		if p.network == network {
			return p.ln.Addr().String()
		}
	}
	return ""
}
