package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// send does the round trip on the destination's transport (never a
// redirect: RoundTrip follows none, and there is no client) and reads
// the answer within the limit.
func (b *Broker) send(ctx context.Context, c *call, hreq *http.Request) (*Response, error) {
	resp, err := b.transport(c.serverName).RoundTrip(hreq)
	if err != nil {
		return nil, b.netErr(ctx, c, err)
	}
	defer resp.Body.Close()
	c.details["status"] = strconv.Itoa(resp.StatusCode)
	max := c.lim.MaxResponseBytes
	if hreq.Method != http.MethodHead && resp.ContentLength > int64(max) {
		return nil, c.err(ErrTooLarge, "response of %d bytes is over the limit of %d bytes", resp.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(max)+1))
	c.details["response_bytes"] = strconv.Itoa(len(body))
	if err != nil {
		return nil, b.netErr(ctx, c, err)
	}
	if len(body) > max {
		return nil, c.err(ErrTooLarge, "response is over the limit of %d bytes", max)
	}
	echo := echoes(c.req.Conn.Secret)
	if containsAny(string(body), echo) {
		return nil, c.err(ErrDenied, "the destination echoed the connection's secret in its response; withheld")
	}
	return &Response{Status: resp.StatusCode, Header: filterResponse(resp.Header, echo), Body: body}, nil
}

// netErr classifies a transport error: the deadline, or the destination.
func (b *Broker) netErr(ctx context.Context, c *call, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return c.err(ErrUnavailable, "no complete answer in time (limit %v)", c.lim.Timeout)
	}
	return c.err(ErrUnavailable, "%v", err)
}

// transport returns the transport of one TLS server name ("" for CIDR
// connections, whose server name is the address dialed). Its pool is
// keyed by the address dialed, so a connection is reused only for the
// address it was opened to.
func (b *Broker) transport(serverName string) *http.Transport {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.transports[serverName]; ok {
		return t
	}
	t := &http.Transport{
		Proxy:                  nil, // never the environment's proxy: the broker connects itself
		DialContext:            dialChecked,
		TLSClientConfig:        &tls.Config{RootCAs: b.cfg.RootCAs, ServerName: serverName, MinVersion: tls.VersionTLS12},
		DisableCompression:     true, // bytes counted are bytes sent
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
	}
	b.transports[serverName] = t
	return t
}

// dialChecked dials exactly the address it is handed, which must be an
// IP literal (the URL host is always the checked address): it never
// resolves, so DNS cannot answer differently between check and connect.
func dialChecked(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("egress dial: %q is not a checked address", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, ap.String())
}
