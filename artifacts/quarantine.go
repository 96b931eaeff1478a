package artifacts

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/udfhost/udfhost/internal/atomicfile"
)

// Quarantine says why an artifact's code may not run: it broke the
// sandbox's rules repeatedly. It is kept in the metadata of every artifact
// with the same digest (they are the same code, so a second upload of the
// bytes is quarantined too) and survives restarts until Release.
type Quarantine struct {
	Since      time.Time `json:"since"`
	Reason     string    `json:"reason"`     // the last violation, in words
	Violations int       `json:"violations"` // how many led to the quarantine
}

// Quarantined returns the quarantine of the code with digest, or nil. It
// takes no lock and does not allocate: callers ask it for every batch.
func (s *Store) Quarantined(digest string) *Quarantine {
	if m := s.quarantined.Load(); m != nil {
		return (*m)[digest]
	}
	return nil
}

// Quarantine quarantines every artifact with digest and returns them; an
// artifact already quarantined keeps its first quarantine. Calls are
// refused from the moment Quarantine is called, even if writing the
// metadata fails. It returns ErrNotFound if no artifact has digest.
func (s *Store) Quarantine(ctx context.Context, digest string, q Quarantine) ([]*Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	metas, err := s.withDigest(digest)
	if err != nil {
		return nil, fmt.Errorf("quarantine %s: %w", digest, err)
	}
	if cur := s.Quarantined(digest); cur != nil {
		q = *cur
	} else {
		q.Since = q.Since.UTC()
		s.setQuarantined(digest, &q)
	}
	out := make([]*Artifact, len(metas))
	for i, m := range metas {
		if m.Quarantine == nil {
			m.Quarantine = &q
			if err := s.saveMeta(m); err != nil {
				return nil, fmt.Errorf("quarantine %s: %w", digest, err)
			}
		}
		out[i] = &m.Artifact
	}
	return out, nil
}

// Release lifts the quarantine of artifact id and of every artifact with
// its digest. It returns the artifact and whether it was quarantined.
func (s *Store) Release(ctx context.Context, id string) (*Artifact, bool, error) {
	if err := checkArtifactID(id); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.loadMeta(id)
	if err != nil {
		return nil, false, fmt.Errorf("release artifact: %w", err)
	}
	metas, err := s.withDigest(m.Digest)
	if err != nil {
		return nil, false, fmt.Errorf("release artifact %s: %w", id, err)
	}
	was := s.Quarantined(m.Digest) != nil
	// Metadata first: if a write fails the code stays quarantined here,
	// and New quarantines the whole digest again after a restart.
	for _, o := range metas {
		if o.Quarantine != nil {
			was = true
			o.Quarantine = nil
			if err := s.saveMeta(o); err != nil {
				return nil, false, fmt.Errorf("release artifact %s: %w", id, err)
			}
		}
	}
	s.setQuarantined(m.Digest, nil)
	m.Quarantine = nil
	return &m.Artifact, was, nil
}

// recoverQuarantine rebuilds the index from the metadata. A crash while
// quarantining or releasing can leave some artifacts of a digest marked
// and others not: all are then marked, since refusing is the safe side.
func (s *Store) recoverQuarantine(metas []*metaRecord) error {
	idx := map[string]*Quarantine{}
	for _, m := range metas {
		if m.Quarantine != nil && idx[m.Digest] == nil {
			idx[m.Digest] = m.Quarantine
		}
	}
	for _, m := range metas {
		if q := idx[m.Digest]; q != nil && m.Quarantine == nil {
			m.Quarantine = q
			if err := s.saveMeta(m); err != nil {
				return fmt.Errorf("repair quarantine of %s: %w", m.ID, err)
			}
		}
	}
	s.quarantined.Store(&idx)
	return nil
}

// setQuarantined replaces the index with one where digest maps to q (nil:
// removed). Called with s.mu held.
func (s *Store) setQuarantined(digest string, q *Quarantine) {
	var idx map[string]*Quarantine
	if old := s.quarantined.Load(); old != nil {
		idx = maps.Clone(*old)
	}
	if idx == nil {
		idx = map[string]*Quarantine{}
	}
	if q == nil {
		delete(idx, digest)
	} else {
		idx[digest] = q
	}
	s.quarantined.Store(&idx)
}

// withDigest returns the metadata of every artifact with digest, or
// ErrNotFound. Called with s.mu held.
func (s *Store) withDigest(digest string) ([]*metaRecord, error) {
	all, err := s.loadAllMeta()
	if err != nil {
		return nil, err
	}
	var out []*metaRecord
	for _, m := range all {
		if m.Digest == digest {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no artifact has digest %s", ErrNotFound, digest)
	}
	return out, nil
}

// saveMeta writes an artifact's metadata atomically.
func (s *Store) saveMeta(m *metaRecord) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.metaPath(m.ID), append(b, '\n'), filePerm)
}
