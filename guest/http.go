package guest

// Egress: a connector artifact (and only a connector: the host's
// validator refuses udfhost_http imports in a udf) may ask the host for
// HTTP exchanges during a call, through the functions its binding grants
// it ("function create … --connection NAME"). The guest never reaches a
// network: the host's broker checks each request against the
// connection's grant, adds the connection's secret (which the guest never
// sees), performs it and answers. docs/CONNECTORS.md, "The SDK", and
// docs/ABI.md, "The udfhost_http import module", describe the rules.
//
// A request names its connection by name or, so that the code does not
// depend on how an operator named it, by position in the function's
// binding: Connection(0) is the first connection the function was bound
// with.

// Connection returns how a guest names the i-th connection of the
// function it runs as ("#0" for the first).
func Connection(i int) string { return "#" + itoa(int64(i)) }

// Request is an HTTP request through a connection. Path is the request
// target after the connection's destination ("/key?x=1"); Addr, for a
// connection whose destination is a network range, picks the address
// within it ("10.1.2.3:8080"), else stays "". The host sets Host, the
// connection's secret header and the body's length itself.
type Request struct {
	Conn, Method, Path, Addr string
	Header                   [][2]string
	Body                     []byte
}

// Response is the answer to a Request. Body is the guest's own copy.
type Response struct {
	Status int
	Header [][2]string
	Body   []byte
}

// Get returns the first value of the header name (case-insensitive), or
// "".
func (r *Response) Get(name string) string {
	for _, kv := range r.Header {
		if equalFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}

// HTTPError is a request the host refused or could not complete. Code is
// the udfhost_http code (CodeDenied, …), Msg the host's explanation. A
// response with any HTTP status, 404 or 500 included, is not an error.
type HTTPError struct {
	Code int
	Msg  string
}

func (e *HTTPError) Error() string {
	if e.Msg == "" {
		return "udfhost_http: error " + itoa(int64(e.Code))
	}
	return e.Msg
}

// The codes of udfhost_http (docs/ABI.md).
const (
	CodeBadRequest = -1 // the request is malformed or over a limit
	CodeMemory     = -2 // a buffer outside the guest's memory (an SDK bug)
	CodeDenied     = -3 // refused: no such connection, or its grant does not allow it
	CodeFailed     = -4 // allowed, but it did not complete (destination down, slow, too large)
	CodeOverloaded = -5 // too many requests in flight; a later call may succeed
	CodeNoResponse = -6 // no response to read
)

// HTTP sends method path, with body (nil for none), through connection
// conn and returns the response's status and body.
func HTTP(conn, method, path string, body []byte) (status int, respBody []byte, err error) {
	resp, err := do(&Request{Conn: conn, Method: method, Path: path, Body: body}, false)
	if err != nil {
		return 0, nil, err
	}
	return resp.Status, resp.Body, nil
}

// Do sends req and returns the response with its headers.
func Do(req *Request) (*Response, error) { return do(req, true) }

// reqBuf and respBuf are reused from request to request: a guest instance
// runs one call, and so one request, at a time.
var reqBuf, respBuf []byte

// firstRead is the size of the buffer a response is first read into;
// a larger body is read in a second step (response_read).
const firstRead = 16 << 10

func do(req *Request, headers bool) (*Response, error) {
	reqBuf = appendRequest(reqBuf[:0], req)
	if respBuf == nil {
		respBuf = make([]byte, firstRead)
	}
	r := hostRequest(reqBuf, respBuf)
	if r < 0 {
		return nil, lastError(r)
	}
	resp := &Response{Status: int(r >> 32)}
	n := int(uint32(r))
	resp.Body = make([]byte, n)
	copied := copy(resp.Body, respBuf[:min(n, len(respBuf))])
	for copied < n {
		got := hostResponseRead(uint32(copied), resp.Body[copied:])
		if got <= 0 {
			return nil, lastError(int64(min(got, CodeNoResponse)))
		}
		copied += int(got)
	}
	if headers {
		var err error
		if resp.Header, err = responseHeaders(); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// responseHeaders reads the last response's header block.
func responseHeaders() ([][2]string, error) {
	buf := respBuf
	n := hostResponseHeaders(buf)
	if n > int32(len(buf)) {
		buf = make([]byte, n)
		n = hostResponseHeaders(buf)
	}
	if n < 0 {
		return nil, lastError(int64(n))
	}
	h, ok := parseHeaders(buf[:n])
	if !ok {
		return nil, &HTTPError{Code: CodeFailed, Msg: "udfhost_http: malformed response headers"}
	}
	return h, nil
}

// lastError returns the error of code, with the host's message.
func lastError(code int64) error {
	var buf [512]byte
	n := hostLastError(buf[:])
	msg := string(buf[:max(0, min(int(n), len(buf)))])
	return &HTTPError{Code: int(code), Msg: msg}
}

// appendRequest appends req's request record (docs/ABI.md): each field a
// u32 length and its bytes; the headers a u32 count, then name and value
// each so.
func appendRequest(dst []byte, req *Request) []byte {
	dst = appendField(dst, req.Conn)
	dst = appendField(dst, req.Method)
	dst = appendField(dst, req.Path)
	dst = appendField(dst, req.Addr)
	dst = appendU32(dst, uint32(len(req.Header)))
	for _, kv := range req.Header {
		dst = appendField(dst, kv[0])
		dst = appendField(dst, kv[1])
	}
	dst = appendU32(dst, uint32(len(req.Body)))
	return append(dst, req.Body...)
}

func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

func appendField(dst []byte, s string) []byte {
	return append(appendU32(dst, uint32(len(s))), s...)
}

// parseHeaders decodes a header block: a u32 count, then name and value,
// each a u32 length and its bytes.
func parseHeaders(b []byte) ([][2]string, bool) {
	if len(b) < 4 {
		return nil, false
	}
	n := int(le32(b, 0))
	b = b[4:]
	if n > len(b)/8 {
		return nil, false
	}
	h := make([][2]string, 0, n)
	for range n {
		var kv [2]string
		for j := range kv {
			if len(b) < 4 {
				return nil, false
			}
			l := int(le32(b, 0))
			if l > len(b)-4 {
				return nil, false
			}
			kv[j], b = string(b[4:4+l]), b[4+l:]
		}
		h = append(h, kv)
	}
	return h, len(b) == 0
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
