package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Egress: during a call, a guest that imports udfhost_http asks the host
// for an HTTP exchange (docs/ABI.md, "The udfhost_http import module").
// It is the one request that goes from the worker to the host:
//
//	KindEgress      worker -> host: frame id = an egress id unique in the
//	                worker; payload = the id of the call it belongs to
//	                (u64) followed by the guest's request record.
//	KindEgressReply host -> worker: frame id = that egress id; status
//	                StatusOK and a response record, or an egress error
//	                class (StatusEgress*) and its message as the payload.
//
// A request record, as the guest writes it in its memory and the worker
// forwards it unchanged (every length a u32, little-endian):
//
//	len conn | len method | len path | len addr |
//	header count | per header: len name, len value |
//	len body
//
// A response record:
//
//	status (u32) | header count | per header: len name, len value |
//	len body
//
// Every field is bounded (MaxEgress* below, the body by the reader's
// limit) and checked against the bytes received before anything is
// allocated: the host decodes what an untrusted worker sends.
const (
	KindEgress      uint16 = 6
	KindEgressReply uint16 = 7
)

// Error classes of an egress reply (its frame's status field).
const (
	// StatusEgressDenied: the host refused the request: the function has
	// no such connection, or its policy does not allow it.
	StatusEgressDenied uint16 = 16
	// StatusEgressFailed: the request was allowed but did not complete
	// (destination down or slow, response over its limit).
	StatusEgressFailed uint16 = 17
	// StatusEgressOverloaded: too many egress requests are in flight.
	StatusEgressOverloaded uint16 = 18
	// StatusEgressBadRequest: the request record is malformed.
	StatusEgressBadRequest uint16 = 19
)

// Bounds of a request or response record's fields.
const (
	MaxEgressConn        = 128
	MaxEgressMethod      = 16
	MaxEgressPath        = 8 << 10
	MaxEgressAddr        = 256
	MaxEgressHeaders     = 32
	MaxEgressHeaderName  = 128
	MaxEgressHeaderValue = 8 << 10
	// MaxEgressBody is the largest request or response body the
	// protocol carries; the host may set a lower limit.
	MaxEgressBody = 16 << 20
	// MaxEgressError bounds the message of an error reply.
	MaxEgressError = 1 << 10
	// MaxEgressFrame bounds a KindEgress frame's payload: the call id,
	// the fields at their bounds and the largest body.
	MaxEgressFrame = 8 + 4*9 + MaxEgressConn + MaxEgressMethod + MaxEgressPath + MaxEgressAddr +
		MaxEgressHeaders*(8+MaxEgressHeaderName+MaxEgressHeaderValue) + MaxEgressBody
)

// EgressRequest is a decoded request record. Body aliases the record.
type EgressRequest struct {
	Conn, Method, Path, Addr string
	Header                   [][2]string
	Body                     []byte
}

// EgressResponse is a decoded response record. Body aliases the record.
type EgressResponse struct {
	Status int
	Header [][2]string
	Body   []byte
}

// AppendEgressRequest appends req's request record to dst.
func AppendEgressRequest(dst []byte, req *EgressRequest) []byte {
	dst = appendField(dst, req.Conn)
	dst = appendField(dst, req.Method)
	dst = appendField(dst, req.Path)
	dst = appendField(dst, req.Addr)
	dst = appendHeaders(dst, req.Header)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(req.Body)))
	return append(dst, req.Body...)
}

// EncodeEgressResponse returns the payload of a reply carrying resp, in
// parts: the status and headers, then the body (not copied).
func EncodeEgressResponse(resp *EgressResponse) [][]byte {
	h := binary.LittleEndian.AppendUint32(nil, uint32(resp.Status))
	h = appendHeaders(h, resp.Header)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(resp.Body)))
	return [][]byte{h, resp.Body}
}

// ParseEgress splits a KindEgress payload into the id of the call it
// belongs to and the request record.
func ParseEgress(p []byte) (uint64, []byte, error) {
	if len(p) < 8 {
		return 0, nil, fmt.Errorf("egress frame of %d bytes has no call id", len(p))
	}
	return binary.LittleEndian.Uint64(p), p[8:], nil
}

// DecodeEgressRequest decodes and checks a request record whose body may
// hold at most maxBody bytes (and never more than MaxEgressBody). The
// method is 1 to 16 upper-case letters, header names are HTTP tokens,
// and no field holds a control character other than a body's: a guest
// cannot smuggle a second request or header through one.
func DecodeEgressRequest(rec []byte, maxBody int) (EgressRequest, error) {
	var req EgressRequest
	d := decoder{p: rec}
	req.Conn = d.text("connection name", MaxEgressConn)
	req.Method = d.text("method", MaxEgressMethod)
	req.Path = d.text("path", MaxEgressPath)
	req.Addr = d.text("address", MaxEgressAddr)
	req.Header = d.headers()
	req.Body = d.body(maxBody)
	if err := d.end(); err != nil {
		return EgressRequest{}, fmt.Errorf("egress request: %w", err)
	}
	if !isMethod(req.Method) {
		return EgressRequest{}, fmt.Errorf("egress request: method %q is not 1 to %d upper-case letters", req.Method, MaxEgressMethod)
	}
	if req.Conn == "" {
		return EgressRequest{}, errors.New("egress request: no connection named")
	}
	return req, nil
}

// DecodeEgressResponse decodes a response record (the worker's side: the
// host's word, checked only for bounds).
func DecodeEgressResponse(rec []byte) (EgressResponse, error) {
	var resp EgressResponse
	d := decoder{p: rec}
	resp.Status = int(d.u32())
	resp.Header = d.headers()
	resp.Body = d.body(MaxEgressBody)
	if err := d.end(); err != nil {
		return EgressResponse{}, fmt.Errorf("egress response: %w", err)
	}
	if resp.Status < 100 || resp.Status > 999 {
		return EgressResponse{}, fmt.Errorf("egress response: status %d is not an HTTP status", resp.Status)
	}
	return resp, nil
}

func appendField(dst []byte, s string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

func appendHeaders(dst []byte, h [][2]string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h)))
	for _, kv := range h {
		dst = appendField(dst, kv[0])
		dst = appendField(dst, kv[1])
	}
	return dst
}

// decoder reads a record's fields; the first problem sticks and later
// reads return zero values.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) u32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.p) < 4 {
		d.fail("truncated: %d bytes left where a length or count was due", len(d.p))
		return 0
	}
	v := binary.LittleEndian.Uint32(d.p)
	d.p = d.p[4:]
	return v
}

// bytes reads a length-prefixed field of at most max bytes.
func (d *decoder) bytes(what string, max int) []byte {
	n := d.u32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		d.fail("%s of %d bytes exceeds the limit of %d", what, n, max)
		return nil
	}
	if uint64(n) > uint64(len(d.p)) {
		d.fail("truncated: %s of %d bytes, %d left", what, n, len(d.p))
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

// text reads a field that must hold no control character.
func (d *decoder) text(what string, max int) string {
	b := d.bytes(what, max)
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			d.fail("%s holds control character %#x", what, c)
			return ""
		}
	}
	return string(b)
}

func (d *decoder) headers() [][2]string {
	n := d.u32()
	if d.err != nil || n == 0 {
		return nil
	}
	if n > MaxEgressHeaders {
		d.fail("%d headers exceed the limit of %d", n, MaxEgressHeaders)
		return nil
	}
	if uint64(n)*8 > uint64(len(d.p)) {
		d.fail("truncated: %d headers announced, %d bytes left", n, len(d.p))
		return nil
	}
	h := make([][2]string, 0, n)
	for i := uint32(0); i < n && d.err == nil; i++ {
		name := d.text("header name", MaxEgressHeaderName)
		value := d.text("header value", MaxEgressHeaderValue)
		if d.err == nil && !isToken(name) {
			d.fail("header name %q is not an HTTP token", name)
		}
		h = append(h, [2]string{name, value})
	}
	return h
}

func (d *decoder) body(maxBody int) []byte {
	return d.bytes("body", min(max(maxBody, 0), MaxEgressBody))
}

func (d *decoder) end() error {
	if d.err == nil && len(d.p) != 0 {
		d.fail("%d bytes after the last field", len(d.p))
	}
	return d.err
}

// CarriableHeader reports whether a record can carry the header name:
// value (a response's headers that cannot are dropped by the host).
func CarriableHeader(name, value string) bool {
	if len(name) > MaxEgressHeaderName || len(value) > MaxEgressHeaderValue || !isToken(name) {
		return false
	}
	for i := 0; i < len(value); i++ {
		if value[i] < 0x20 || value[i] == 0x7f {
			return false
		}
	}
	return true
}

func isMethod(s string) bool {
	if s == "" || len(s) > MaxEgressMethod {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 9110 token, as a header name must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
