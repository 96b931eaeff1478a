package sectest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
)

// Record is the part of an audit record the suite matches on.
type Record struct {
	Seq      uint64            `json:"seq"`
	Type     string            `json:"type"`
	Actor    string            `json:"actor"`
	Pod      string            `json:"pod"`
	Resource string            `json:"resource"`
	Decision string            `json:"decision"`
	Reason   string            `json:"reason"`
	Details  map[string]string `json:"details"`
}

// AuditMatch describes the record a case must produce. A type ending in
// ".*" matches every type with that prefix ("function.*"). String fields may
// name the case's facts as {upload}, {artifact}, {function}, {pod},
// {digest} and {local} (the client's address of the connection involved);
// empty fields match anything.
type AuditMatch struct {
	Type     OneOf            `json:"type"`
	Resource string           `json:"resource,omitempty"`
	Pod      string           `json:"pod,omitempty"`
	Actor    string           `json:"actor,omitempty"`
	Decision OneOf            `json:"decision,omitempty"`
	Reason   OneOf            `json:"reason,omitempty"` // substrings
	Details  map[string]OneOf `json:"details,omitempty"`
}

// Resolve fills in the templates from vars; a template without a value is
// an error, so a case cannot match loosely by accident.
func (m AuditMatch) Resolve(vars map[string]string) (AuditMatch, error) {
	var missing []string
	sub := func(s string) string {
		for {
			i := strings.Index(s, "{")
			j := strings.Index(s, "}")
			if i < 0 || j < i {
				return s
			}
			v, ok := vars[s[i+1:j]]
			if !ok || v == "" {
				missing = append(missing, s[i:j+1])
				return s
			}
			s = s[:i] + v + s[j+1:]
		}
	}
	out := m
	out.Resource, out.Pod, out.Actor = sub(m.Resource), sub(m.Pod), sub(m.Actor)
	out.Details = map[string]OneOf{}
	for k, vs := range m.Details {
		for _, v := range vs {
			out.Details[k] = append(out.Details[k], sub(v))
		}
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("the case never learned %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// Match reports whether r is the record m describes.
func (m AuditMatch) Match(r Record) bool {
	if !m.typeMatch(r.Type) || !m.Decision.equal(r.Decision) || !m.Reason.within(r.Reason) {
		return false
	}
	for _, f := range [][2]string{{m.Resource, r.Resource}, {m.Pod, r.Pod}, {m.Actor, r.Actor}} {
		if f[0] != "" && f[0] != f[1] {
			return false
		}
	}
	for k, want := range m.Details {
		got, ok := r.Details[k]
		if !ok || !want.equal(got) {
			return false
		}
	}
	return true
}

// typeMatch reports whether t is one of m's types or has one of its
// prefixes.
func (m AuditMatch) typeMatch(t string) bool {
	for _, want := range m.Type {
		if p, ok := strings.CutSuffix(want, "*"); ok && strings.HasPrefix(t, p) || want == t {
			return true
		}
	}
	return len(m.Type) == 0
}

// String renders m for a failure message.
func (m AuditMatch) String() string {
	parts := []string{"type " + strings.Join(m.Type, "|")}
	for _, f := range [][2]string{{"resource", m.Resource}, {"pod", m.Pod}, {"actor", m.Actor}, {"decision", strings.Join(m.Decision, "|")}} {
		if f[1] != "" {
			parts = append(parts, f[0]+" "+f[1])
		}
	}
	if len(m.Reason) > 0 {
		parts = append(parts, "reason containing "+strings.Join(m.Reason, "|"))
	}
	keys := make([]string, 0, len(m.Details))
	for k := range m.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+strings.Join(m.Details[k], "|"))
	}
	return strings.Join(parts, ", ")
}

// auditLog follows the server's audit log: it keeps every record appended
// since it was opened, read on demand.
type auditLog struct {
	path string
	mu   sync.Mutex
	off  int64
	part []byte // an incomplete last line
	recs []Record
}

// openAudit starts following path from its current end.
func openAudit(path string) (*auditLog, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &auditLog{path: path, off: fi.Size()}, nil
}

// since returns the records with a sequence number above seq.
func (l *auditLog) since(seq uint64) ([]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.read(); err != nil {
		return nil, err
	}
	i := sort.Search(len(l.recs), func(i int) bool { return l.recs[i].Seq > seq })
	return l.recs[i:], nil
}

// last returns the highest sequence number seen so far.
func (l *auditLog) last() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.read(); err != nil {
		return 0, err
	}
	if len(l.recs) == 0 {
		return 0, nil
	}
	return l.recs[len(l.recs)-1].Seq, nil
}

func (l *auditLog) read() error {
	f, err := os.Open(l.path)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	l.off += int64(len(b))
	recs, rest, err := parseRecords(append(l.part, b...))
	l.part = rest
	l.recs = append(l.recs, recs...)
	return err
}

// parseRecords decodes the complete lines of b and returns the incomplete
// tail.
func parseRecords(b []byte) ([]Record, []byte, error) {
	end := bytes.LastIndexByte(b, '\n') + 1
	var recs []Record
	sc := bufio.NewScanner(bytes.NewReader(b[:end]))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return recs, nil, fmt.Errorf("audit log: bad record %.80q: %w", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs, append([]byte(nil), b[end:]...), nil
}
