// Package presign issues and verifies HMAC-SHA256 pre-signed URLs for the
// host's own object endpoint. A URL grants one method on one object key,
// with a declared size and sha256, until it expires; the nonce (ID) is
// carried and signed here, but deciding when a URL is used up is the job of
// whoever serves it (the artifact store: when a PUT stored the bytes).
package presign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors returned (wrapped with detail) by Verify. The detail never
// contains the signature.
var (
	// ErrMalformed means the URL lacks, duplicates or mangles a signed
	// parameter, or names a path outside the object endpoint.
	ErrMalformed = errors.New("malformed pre-signed URL")
	// ErrBadSignature means the MAC does not match the signed fields.
	ErrBadSignature = errors.New("pre-signed URL signature invalid")
	// ErrExpired means the signature is valid but the URL is past its expiry.
	ErrExpired = errors.New("pre-signed URL expired")
	// ErrWrongMethod means the URL was signed for another HTTP method.
	ErrWrongMethod = errors.New("pre-signed URL not valid for this method")
)

// Query parameter names. They are case-sensitive.
const (
	ParamMethod    = "X-Udfhost-Method"
	ParamExpires   = "X-Udfhost-Expires"
	ParamSize      = "X-Udfhost-Size"
	ParamSHA256    = "X-Udfhost-Sha256"
	ParamID        = "X-Udfhost-Id"
	ParamSignature = "X-Udfhost-Signature"
)

// PathPrefix is the path, below the base URL, under which object keys live.
const PathPrefix = "/v1/objects/"

// canonicalVersion starts the string the MAC covers, so a future format can
// never be confused with this one.
const canonicalVersion = "udfhost-presign-v1"

// maxFieldLen bounds every string field; longer values are malformed.
const maxFieldLen = 1024

// Params are the fields a pre-signed URL grants; every one of them is covered
// by the signature.
type Params struct {
	Method  string    // "PUT" or "GET"
	Key     string    // host-chosen object key, e.g. "uploads/<id>"
	Size    int64     // exact byte count for PUT (0 for GET)
	SHA256  string    // lower-case hex of the content
	ID      string    // nonce (the upload id)
	Expires time.Time // unix-second precision
}

// Signer signs and verifies URLs with one HMAC key. It is safe for concurrent
// use.
type Signer struct {
	key      []byte
	baseURL  string // without trailing slash
	basePath string // path part of baseURL, without trailing slash
}

// NewSigner returns a Signer that issues URLs below baseURL (for example
// "http://127.0.0.1:7444") and verifies them with key. The key is copied.
func NewSigner(key []byte, baseURL string) *Signer {
	base := strings.TrimRight(baseURL, "/")
	s := &Signer{key: append([]byte(nil), key...), baseURL: base}
	if u, err := url.Parse(base); err == nil {
		s.basePath = strings.TrimRight(u.Path, "/")
	}
	return s
}

// Sign returns the full URL granting p: baseURL + "/v1/objects/" + Key with
// the signed query parameters. Expires is truncated to whole seconds. Params
// that Verify would reject (an unknown method, a key with empty or dot
// segments, a newline in a field…) yield a URL that never verifies.
func (s *Signer) Sign(p Params) string {
	exp := p.Expires.Unix()
	sig := s.mac(p.Method, p.Key, exp, p.Size, p.SHA256, p.ID)
	q := url.Values{}
	q.Set(ParamMethod, p.Method)
	q.Set(ParamExpires, strconv.FormatInt(exp, 10))
	q.Set(ParamSize, strconv.FormatInt(p.Size, 10))
	q.Set(ParamSHA256, p.SHA256)
	q.Set(ParamID, p.ID)
	q.Set(ParamSignature, hex.EncodeToString(sig))
	return s.baseURL + PathPrefix + escapeKey(p.Key) + "?" + q.Encode()
}

// Verify checks that u (the request URL as the server saw it: path and raw
// query) is a URL this Signer issued, for method, and not expired at now.
// It returns the signed fields. Checks run in this order: well-formedness
// (ErrMalformed), signature (ErrBadSignature, constant-time), method
// (ErrWrongMethod), expiry (ErrExpired).
func (s *Signer) Verify(method string, u *url.URL, now time.Time) (Params, error) {
	if u == nil {
		return Params{}, fmt.Errorf("%w: no URL", ErrMalformed)
	}
	key, err := s.keyFromPath(u.Path)
	if err != nil {
		return Params{}, err
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Params{}, fmt.Errorf("%w: query does not parse", ErrMalformed)
	}
	known := map[string]bool{
		ParamMethod: true, ParamExpires: true, ParamSize: true,
		ParamSHA256: true, ParamID: true, ParamSignature: true,
	}
	for name, vals := range q {
		if !known[name] {
			return Params{}, fmt.Errorf("%w: unexpected query parameter %q", ErrMalformed, truncate(name))
		}
		if len(vals) != 1 {
			return Params{}, fmt.Errorf("%w: query parameter %s given %d times", ErrMalformed, name, len(vals))
		}
	}
	for _, name := range []string{ParamMethod, ParamExpires, ParamSize, ParamSHA256, ParamID, ParamSignature} {
		if _, ok := q[name]; !ok {
			return Params{}, fmt.Errorf("%w: missing query parameter %s", ErrMalformed, name)
		}
	}

	p := Params{Key: key, Method: q.Get(ParamMethod), SHA256: q.Get(ParamSHA256), ID: q.Get(ParamID)}
	if p.Method != "PUT" && p.Method != "GET" {
		return Params{}, fmt.Errorf("%w: %s must be PUT or GET", ErrMalformed, ParamMethod)
	}
	exp, err := parseCanonicalInt(q.Get(ParamExpires))
	if err != nil {
		return Params{}, fmt.Errorf("%w: %s: %v", ErrMalformed, ParamExpires, err)
	}
	p.Size, err = parseCanonicalInt(q.Get(ParamSize))
	if err != nil || p.Size < 0 {
		return Params{}, fmt.Errorf("%w: %s must be a non-negative decimal integer", ErrMalformed, ParamSize)
	}
	if p.SHA256 != "" && !IsHexSHA256(p.SHA256) {
		return Params{}, fmt.Errorf("%w: %s must be 64 lower-case hex digits", ErrMalformed, ParamSHA256)
	}
	if !validID(p.ID) {
		return Params{}, fmt.Errorf("%w: %s has characters outside [A-Za-z0-9._-] or is too long", ErrMalformed, ParamID)
	}
	sigHex := q.Get(ParamSignature)
	if len(sigHex) != 2*sha256.Size {
		return Params{}, fmt.Errorf("%w: %s must be %d hex digits", ErrMalformed, ParamSignature, 2*sha256.Size)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return Params{}, fmt.Errorf("%w: the signature (%s) is not hex", ErrMalformed, ParamSignature)
	}

	want := s.mac(p.Method, p.Key, exp, p.Size, p.SHA256, p.ID)
	if !hmac.Equal(sig, want) {
		return Params{}, fmt.Errorf("%w for %s", ErrBadSignature, p.Key)
	}
	if method != p.Method {
		return Params{}, fmt.Errorf("%w: signed for %s, request is %q", ErrWrongMethod, p.Method, truncate(method))
	}
	p.Expires = time.Unix(exp, 0)
	if now.After(p.Expires) {
		return Params{}, fmt.Errorf("%w at %s", ErrExpired, p.Expires.UTC().Format(time.RFC3339))
	}
	return p, nil
}

// mac computes the HMAC over a canonical, unambiguous encoding of every
// signed field: each field is written as its byte length, a colon, the bytes
// and a newline, so no choice of field contents can make two different
// parameter sets encode to the same string.
func (s *Signer) mac(method, key string, expires, size int64, sha, id string) []byte {
	h := hmac.New(sha256.New, s.key)
	for _, f := range []string{
		canonicalVersion, method, key,
		strconv.FormatInt(expires, 10), strconv.FormatInt(size, 10), sha, id,
	} {
		fmt.Fprintf(h, "%d:%s\n", len(f), f)
	}
	return h.Sum(nil)
}

// keyFromPath extracts and validates the object key from a request path.
func (s *Signer) keyFromPath(path string) (string, error) {
	prefix := s.basePath + PathPrefix
	if !strings.HasPrefix(path, prefix) {
		return "", fmt.Errorf("%w: path is not under %s", ErrMalformed, prefix)
	}
	key := path[len(prefix):]
	if err := checkKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// checkKey accepts slash-separated segments of [A-Za-z0-9._-], none empty,
// "." or "..".
func checkKey(key string) error {
	if key == "" || len(key) > maxFieldLen {
		return fmt.Errorf("%w: object key is empty or too long", ErrMalformed)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: object key has an empty or dot segment", ErrMalformed)
		}
		for i := 0; i < len(seg); i++ {
			if !isIDByte(seg[i]) {
				return fmt.Errorf("%w: object key has characters outside [A-Za-z0-9._/-]", ErrMalformed)
			}
		}
	}
	return nil
}

// escapeKey path-escapes each segment of key (a no-op for valid keys).
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func validID(id string) bool {
	if len(id) > maxFieldLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isIDByte(id[i]) {
			return false
		}
	}
	return true
}

func isIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// IsHexSHA256 reports whether s is 64 lower-case hex digits.
func IsHexSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// parseCanonicalInt parses a decimal int64 and insists on its canonical
// spelling (no sign on positives, no leading zeros), so one signed value has
// exactly one URL form.
func parseCanonicalInt(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s {
		return 0, errors.New("not a canonical decimal integer")
	}
	return n, nil
}

// truncate shortens attacker-supplied text before it goes into an error.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
