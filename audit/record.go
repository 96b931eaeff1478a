package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Record is one line of the audit log: an [Event] plus the sequence number,
// time and hash chain the log adds. It encodes to JSON with its fields in
// declaration order (fastverify.go reads them in that order: a new field
// goes there too, or verifying falls back to the slow path).
type Record struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"` // UTC, RFC 3339 with nanoseconds
	Type      string    `json:"type"`
	Actor     string    `json:"actor,omitempty"`
	SPIFFEID  string    `json:"spiffe_id,omitempty"`
	Network   string    `json:"network,omitempty"`
	Pod       string    `json:"pod,omitempty"`
	Resource  string    `json:"resource,omitempty"`
	Decision  string    `json:"decision"`
	Reason    string    `json:"reason,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	// Host is the stable id of the host that wrote the record (several
	// hosts may share one store, each with its own log).
	Host    string            `json:"host,omitempty"`
	Details map[string]string `json:"details,omitempty"`
	Prev    string            `json:"prev"` // hash of the previous record
	Hash    string            `json:"hash,omitempty"`
}

// GenesisHash is the prev value of the first record in a log.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

const (
	hashPrefix = `,"hash":"`
	hashEnd    = `"}`
	// hashSuffixLen is the length of `,"hash":"<64 hex>"}`.
	hashSuffixLen = len(hashPrefix) + sha256.Size*2 + len(hashEnd)
	// maxLineLen bounds one line (without its newline) so that a damaged
	// file cannot make Verify read unbounded amounts into memory.
	maxLineLen = 1 << 20
)

// body returns the bytes that are hashed: the JSON encoding of r without
// its hash field (Hash is omitempty, so clearing it drops the field).
func (r Record) body() ([]byte, error) {
	r.Hash = ""
	return json.Marshal(r)
}

// seal computes the hash of body and returns the full line, newline
// included, and the hash.
func seal(body []byte) (line []byte, hash string) {
	sum := sha256.Sum256(body)
	hash = hex.EncodeToString(sum[:])
	line = make([]byte, 0, len(body)-1+hashSuffixLen+1)
	line = append(line, body[:len(body)-1]...)
	line = append(line, hashPrefix...)
	line = append(line, hash...)
	line = append(line, hashEnd...)
	line = append(line, '\n')
	return line, hash
}

// unseal splits a line (without its newline) into the hashed body and the
// hash it claims. ok is false if the line does not end in a well-formed
// hash field.
func unseal(line []byte) (body []byte, hash string, ok bool) {
	n := len(line)
	// The body is at least "{}" once its "}" is restored, so the line
	// must be longer than the suffix.
	if n <= hashSuffixLen || line[0] != '{' {
		return nil, "", false
	}
	suffix := line[n-hashSuffixLen:]
	if string(suffix[:len(hashPrefix)]) != hashPrefix || string(suffix[len(suffix)-len(hashEnd):]) != hashEnd {
		return nil, "", false
	}
	h := suffix[len(hashPrefix) : len(suffix)-len(hashEnd)]
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, "", false
		}
	}
	body = make([]byte, 0, n-hashSuffixLen+1)
	body = append(body, line[:n-hashSuffixLen]...)
	body = append(body, '}')
	return body, string(h), true
}

// newRecord builds the record for e. Strings are made valid UTF-8 first so
// that the encoding round-trips exactly (encoding/json would otherwise
// replace invalid bytes with escapes that re-encode differently), and
// Details is copied so the caller's map is never shared.
func newRecord(seq uint64, t time.Time, prev, host string, e Event) Record {
	r := Record{
		Seq:       seq,
		Time:      t.UTC(),
		Type:      validUTF8(e.Type),
		Actor:     validUTF8(e.Actor),
		SPIFFEID:  validUTF8(e.SPIFFEID),
		Network:   validUTF8(e.Network),
		Pod:       validUTF8(e.Pod),
		Resource:  validUTF8(e.Resource),
		Decision:  validUTF8(e.Decision),
		Reason:    validUTF8(e.Reason),
		RequestID: validUTF8(e.RequestID),
		Host:      host,
		Prev:      prev,
	}
	if len(e.Details) > 0 {
		r.Details = make(map[string]string, len(e.Details))
		for k, v := range e.Details {
			r.Details[validUTF8(k)] = validUTF8(v)
		}
	}
	return r
}

func validUTF8(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}

// encode returns the sealed line for r and r with its Hash set.
func encode(r Record) ([]byte, Record, error) {
	body, err := r.body()
	if err != nil {
		return nil, Record{}, fmt.Errorf("encode record %d: %w", r.Seq, err)
	}
	line, hash := seal(body)
	if len(line)-1 > maxLineLen {
		return nil, Record{}, fmt.Errorf("encode record %d: %d bytes is more than the limit of %d", r.Seq, len(line)-1, maxLineLen)
	}
	r.Hash = hash
	return line, r, nil
}

// middleJSON encodes r's fields between time and prev as json.Marshal
// would inside the record's braces, starting with "type": by hand, since
// encoding/json's reflection is most of an Append's CPU. A string with
// anything but plain ASCII goes through json.Marshal.
func middleJSON(r Record) ([]byte, error) {
	b := make([]byte, 0, 256)
	b = append(b, `"type":`...)
	b = appendJSONString(b, r.Type)
	opt := func(key, v string) {
		if v != "" {
			b = append(b, ',', '"')
			b = append(b, key...)
			b = append(b, '"', ':')
			b = appendJSONString(b, v)
		}
	}
	opt("actor", r.Actor)
	opt("spiffe_id", r.SPIFFEID)
	opt("network", r.Network)
	opt("pod", r.Pod)
	opt("resource", r.Resource)
	b = append(b, `,"decision":`...)
	b = appendJSONString(b, r.Decision)
	opt("reason", r.Reason)
	opt("request_id", r.RequestID)
	opt("host", r.Host)
	if len(r.Details) > 0 {
		keys := make([]string, 0, len(r.Details))
		for k := range r.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys) // encoding/json sorts map keys so too
		b = append(b, `,"details":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, r.Details[k])
		}
		b = append(b, '}')
	}
	return b, nil
}

// appendJSONString appends s as json.Marshal encodes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainASCII[s[i]] {
			j, _ := json.Marshal(s)
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// sealParts builds r's line from its seq, time and prev and the encoded
// middle (middleJSON), exactly json.Marshal(r)'s bytes, seals it and sets
// r.Hash.
func sealParts(r *Record, mid []byte) ([]byte, error) {
	ts, err := r.Time.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode record %d: %w", r.Seq, err)
	}
	body := make([]byte, 0, len(mid)+len(ts)+len(r.Prev)+48)
	body = append(body, `{"seq":`...)
	body = strconv.AppendUint(body, r.Seq, 10)
	body = append(body, `,"time":`...)
	body = append(body, ts...)
	body = append(body, ',')
	body = append(body, mid...)
	body = append(body, `,"prev":"`...)
	body = append(body, r.Prev...)
	body = append(body, `"}`...)
	line, hash := seal(body)
	if len(line)-1 > maxLineLen {
		return nil, fmt.Errorf("encode record %d: %d bytes is more than the limit of %d", r.Seq, len(line)-1, maxLineLen)
	}
	r.Hash = hash
	return line, nil
}
