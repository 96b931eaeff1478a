package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"
)

// fastNext is chain.next for the records a Log writes, without
// encoding/json: it accepts a line only if it is sealed, chained and in
// exactly the form json.Marshal gives a Record (fields in order, empty
// omitempty fields absent, details keys strictly increasing, strings
// without escapes or the characters json.Marshal escapes), so whatever it
// accepts the full check would accept too. Anything else (escaped
// strings, damage) goes to the full check, which names the problem.
// Verifying a million records is dominated by this.
func (c *chain) fastNext(line []byte) bool {
	n := len(line)
	if n <= hashSuffixLen || line[0] != '{' {
		return false
	}
	suffix := line[n-hashSuffixLen:]
	if !bytes.HasPrefix(suffix, []byte(hashPrefix)) || !bytes.HasSuffix(suffix, []byte(hashEnd)) {
		return false
	}
	claimed := suffix[len(hashPrefix) : len(suffix)-len(hashEnd)]
	if c.h == nil {
		c.h = sha256.New()
	}
	c.h.Reset()
	c.h.Write(line[:n-hashSuffixLen])
	c.h.Write([]byte("}"))
	var sum [sha256.Size]byte
	var hexSum [sha256.Size * 2]byte
	hex.Encode(hexSum[:], c.h.Sum(sum[:0]))
	if !bytes.Equal(hexSum[:], claimed) {
		return false
	}

	p := fastParser{b: line[:n-hashSuffixLen]}
	seq, ok := p.uintField(`{"seq":`)
	if !ok || seq != c.sum.LastSeq+1 {
		return false
	}
	ts, ok := p.stringField(`,"time":`, false)
	if !ok || len(ts) == 0 || ts[len(ts)-1] != 'Z' {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil || t.Format(time.RFC3339Nano) != string(ts) {
		return false
	}
	if _, ok := p.stringField(`,"type":`, false); !ok {
		return false
	}
	for _, k := range []string{`,"actor":`, `,"spiffe_id":`, `,"network":`, `,"pod":`, `,"resource":`} {
		if !p.optional(k) {
			return false
		}
	}
	if _, ok := p.stringField(`,"decision":`, false); !ok {
		return false
	}
	for _, k := range []string{`,"reason":`, `,"request_id":`, `,"host":`} {
		if !p.optional(k) {
			return false
		}
	}
	if bytes.HasPrefix(p.b, []byte(`,"details":{`)) && !p.details() {
		return false
	}
	prev, ok := p.stringField(`,"prev":`, false)
	if !ok || len(p.b) != 0 || string(prev) != c.prev {
		return false
	}
	if c.sum.Records == 0 {
		c.sum.FirstTime = t
	}
	c.sum.Records++
	c.sum.LastSeq = seq
	c.sum.LastHash = string(claimed)
	c.sum.LastTime = t
	c.prev = c.sum.LastHash
	return true
}

// fastParser consumes a record body from the front.
type fastParser struct{ b []byte }

func (p *fastParser) uintField(key string) (uint64, bool) {
	rest, ok := bytes.CutPrefix(p.b, []byte(key))
	if !ok {
		return 0, false
	}
	i := 0
	for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
		i++
	}
	if i == 0 || i > 1 && rest[0] == '0' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	p.b = rest[i:]
	return v, err == nil
}

// stringField consumes key and a plain string; nonEmpty requires it not
// be "" (an omitempty field that is present).
func (p *fastParser) stringField(key string, nonEmpty bool) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(p.b, []byte(key))
	if !ok {
		return nil, false
	}
	p.b = rest
	s, ok := p.plainString()
	return s, ok && (!nonEmpty || len(s) > 0)
}

// optional consumes key and a non-empty plain string if key is next.
func (p *fastParser) optional(key string) bool {
	if !bytes.HasPrefix(p.b, []byte(key)) {
		return true
	}
	_, ok := p.stringField(key, true)
	return ok
}

// plainString consumes a JSON string that json.Marshal writes as it is:
// no escapes, none of the characters it would escape.
func (p *fastParser) plainString() ([]byte, bool) {
	b := p.b
	if len(b) == 0 || b[0] != '"' {
		return nil, false
	}
	for i := 1; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			p.b = b[i+1:]
			return b[1:i], true
		case plainASCII[c]:
			i++
		case c < utf8.RuneSelf:
			return nil, false
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
				return nil, false
			}
			i += size
		}
	}
	return nil, false
}

// details consumes `,"details":{...}`: at least one pair, keys strictly
// increasing, as json.Marshal sorts a map.
func (p *fastParser) details() bool {
	p.b = p.b[len(`,"details":{`):]
	var last []byte
	for i := 0; ; i++ {
		if i > 0 {
			if len(p.b) > 0 && p.b[0] == '}' {
				p.b = p.b[1:]
				return true
			}
			if len(p.b) == 0 || p.b[0] != ',' {
				return false
			}
			p.b = p.b[1:]
		}
		k, ok := p.plainString()
		if !ok || i > 0 && bytes.Compare(k, last) <= 0 || len(p.b) == 0 || p.b[0] != ':' {
			return false
		}
		p.b = p.b[1:]
		if _, ok := p.plainString(); !ok {
			return false
		}
		last = k
	}
}

// plainASCII holds the ASCII bytes json.Marshal writes as they are (the
// quote ends the string; DEL is left to the full check).
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
