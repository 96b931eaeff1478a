package sectest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ManifestFile is the name of the manifest inside a corpus directory.
const ManifestFile = "manifest.json"

// Manifest lists the suite's cases.
type Manifest struct {
	Cases []Case `json:"cases"`
}

// Case is one hostile behaviour: the artifact, how it is exercised and what
// the server must do about it.
type Case struct {
	Name      string `json:"case"`
	Behaviour string `json:"behaviour"`
	// Artifact is a file in the corpus directory, or "gen:NAME" for a
	// malformed module built in code (see generated). Files ending in
	// .wasm are made unique per run and case (a custom section), so cases
	// never share a pod identity or a quarantine count; other files and
	// generated modules are uploaded byte for byte.
	Artifact string `json:"artifact,omitempty"`
	// Exercise names how the case is run: commit, create, invoke, values,
	// or one of the attacks in exercises.
	Exercise  string            `json:"exercise"`
	Export    string            `json:"export,omitempty"`
	Signature string            `json:"signature,omitempty"`
	ABI       string            `json:"abi,omitempty"` // auto (default), direct or batch
	Rows      []json.RawMessage `json:"rows,omitempty"`
	// Want is what a values case must return, one JSON value per row.
	Want []json.RawMessage `json:"want,omitempty"`
	// Check names the test of a values case's results (checks); default
	// "equal" (to Want).
	Check string `json:"check,omitempty"`
	// After is a clean batch the function must answer correctly once the
	// hostile one was stopped (the instance or worker was replaced).
	After *Batch `json:"after,omitempty"`
	// Params are exercise-specific settings.
	Params map[string]string `json:"params,omitempty"`
	// Alone cases run one at a time after the others (floods, cases that
	// hold server-wide resources), in manifest order.
	Alone  bool   `json:"alone,omitempty"`
	Expect Expect `json:"expect"`
	// Audit is the record the server must write for the case; NoAudit,
	// instead, says why none is expected.
	Audit   *AuditMatch `json:"audit,omitempty"`
	NoAudit string      `json:"no_audit,omitempty"`
}

// Batch is a set of rows and the values expected for them.
type Batch struct {
	Rows []json.RawMessage `json:"rows"`
	Want []json.RawMessage `json:"want"`
}

// Expect is where and how the server must stop a case. Stage is one or
// more of url (CreateUploadURL), put (the pre-signed URL), commit, create,
// invoke, stream, auth, or contained (the call succeeds and the guest could
// not see or do anything it should not: its results pass the case's check).
type Expect struct {
	Stage   OneOf `json:"stage"`
	Code    OneOf `json:"code,omitempty"`    // gRPC code name ("InvalidArgument") or "HTTP 403"
	Message OneOf `json:"message,omitempty"` // substrings of the error message
	// WithinMS bounds how long the server may take to stop it.
	WithinMS int `json:"within_ms,omitempty"`
}

// OneOf is a set of accepted strings; in JSON a string or a list.
type OneOf []string

// UnmarshalJSON accepts "a" or ["a", "b"].
func (o *OneOf) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*o = OneOf{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*o = l
	return nil
}

// equal reports whether v is one of o (or o is empty).
func (o OneOf) equal(v string) bool {
	for _, s := range o {
		if s == v {
			return true
		}
	}
	return len(o) == 0
}

// within reports whether v contains one of o (or o is empty).
func (o OneOf) within(v string) bool {
	for _, s := range o {
		if strings.Contains(v, s) {
			return true
		}
	}
	return len(o) == 0
}

var (
	caseNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	stages     = map[string]bool{"url": true, "put": true, "commit": true, "create": true, "invoke": true, "stream": true, "auth": true, "contained": true}
)

// LoadManifest reads dir's manifest (ParseManifest) and checks that every
// artifact file it names is there.
func LoadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	for _, c := range m.Cases {
		if c.Artifact == "" || strings.HasPrefix(c.Artifact, "gen:") {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, c.Artifact)); err != nil {
			return nil, fmt.Errorf("manifest %s: case %s: %w", path, c.Name, err)
		}
	}
	return m, nil
}

// ParseManifest decodes a manifest and checks it: unique case names, known
// exercises, stages, checks and generators, and for every case an audit
// expectation or the reason there is none.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var errs []error
	for i := range m.Cases {
		c := &m.Cases[i]
		if err := c.check(); err != nil {
			errs = append(errs, fmt.Errorf("case %d (%s): %w", i+1, c.Name, err))
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("case %d: name %q used twice", i+1, c.Name))
		}
		seen[c.Name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &m, nil
}

func (c *Case) check() error {
	switch {
	case !caseNameRE.MatchString(c.Name):
		return fmt.Errorf("name must match %s", caseNameRE)
	case c.Behaviour == "":
		return errors.New("no behaviour")
	case exercises[c.Exercise] == nil:
		return fmt.Errorf("unknown exercise %q", c.Exercise)
	case len(c.Expect.Stage) == 0:
		return errors.New("no stage")
	case (c.Audit == nil) == (c.NoAudit == ""):
		return errors.New("give exactly one of audit and no_audit")
	case c.Check != "" && checks[c.Check] == nil:
		return fmt.Errorf("unknown check %q", c.Check)
	}
	for _, st := range c.Expect.Stage {
		if !stages[st] {
			return fmt.Errorf("unknown stage %q", st)
		}
	}
	if c.Audit != nil && len(c.Audit.Type) == 0 {
		return errors.New("audit without a type")
	}
	if gen, ok := strings.CutPrefix(c.Artifact, "gen:"); ok && generated[gen] == nil {
		return fmt.Errorf("unknown generator %q", gen)
	}
	return nil
}
