package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// Report describes a log that VerifyLog checked.
type Report struct {
	Summary                 // the hash chain over every file
	Files       []string    // the files read, oldest first
	Checkpoints int         // signed checkpoints checked
	Covered     uint64      // records covered by the last checkpoint
	Final       bool        // the last checkpoint was written by Close
	Root        []byte      // RFC 6962 root hash of every record
	Uncovered   uint64      // records after the last checkpoint
	Last        *Checkpoint // the last checkpoint, if any
}

// UncoveredError reports records after the last signed checkpoint. After a
// clean stop the last checkpoint covers every record, so they were either
// written by a server that did not stop cleanly (a crash, SIGKILL, power
// loss: `serve` checkpoints them when it next starts, and records that it
// did) or appended by someone else, with a recomputed chain, or left by
// a checkpoint file rolled back to an older one.
type UncoveredError struct {
	Records  uint64 // how many
	From, To uint64 // their seqs
	Covered  uint64 // records the last checkpoint covers
	Final    bool   // the last checkpoint was written by Close
}

func (e *UncoveredError) Error() string {
	why := "the tail of a server that did not stop cleanly (serve checkpoints it when it next starts and records that it did), records appended by someone else with a recomputed chain, or a checkpoint file rolled back to an older one"
	if e.Final {
		why = "the last checkpoint was written when the log was closed cleanly, so udfhost did not write these: a forged append"
	}
	return fmt.Sprintf("%d records not covered by a signed checkpoint (seq %d to %d; the last checkpoint covers %d): %s", e.Records, e.From, e.To, e.Covered, why)
}

// scan is what a full check of a log found: the report, and the two
// things Open may repair (a torn final line, a torn final checkpoint).
type scan struct {
	Report
	cps      []Checkpoint
	tree     *compact.Range // over every complete record
	torn     *VerifyError   // an incomplete final line of the active file
	ckTail   []byte         // an incomplete final checkpoint note
	ckTailAt int64
	segments int
}

// VerifyLog checks the log in dirOrPath (a directory holding audit.log, or
// a log's active file) completely, offline: the hash chain over every
// sealed segment and the active file, the RFC 6962 tree over every record,
// every checkpoint's signature (with v; nil means the key next to the log)
// and root hash against the records it covers, the consistency proof
// between each two consecutive checkpoints, that each sealed segment ends
// at a checkpoint, and that the last checkpoint covers every record. It
// returns the first problem: a *VerifyError naming a record, a
// *CheckpointError naming a checkpoint, or an *UncoveredError.
func VerifyLog(dirOrPath string, v note.Verifier) (Report, error) {
	ly := resolve(dirOrPath, "")
	if v == nil {
		k, err := loadKey(ly.key)
		if err != nil {
			return Report{}, fmt.Errorf("verify audit log: %w (give the verifier key)", err)
		}
		v = k.verifier
	}
	s, err := scanLog(ly, v)
	if err != nil {
		return s.Report, err
	}
	if s.torn != nil {
		return s.Report, s.torn
	}
	if s.ckTail != nil {
		return s.Report, &CheckpointError{Index: len(s.cps) + 1, Offset: s.ckTailAt, File: ly.ckpts,
			Reason: fmt.Sprintf("incomplete final checkpoint (%d bytes): a write torn by a crash; serve removes it when it next starts", len(s.ckTail))}
	}
	if s.Uncovered > 0 {
		return s.Report, &UncoveredError{Records: s.Uncovered, From: s.Covered + 1, To: s.LastSeq, Covered: s.Covered, Final: s.Final}
	}
	return s.Report, nil
}

// NewVerifier parses a note verifier key ("NAME+HASH+BASE64", as
// `udfhost audit pubkey` prints it).
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(string(bytes.TrimSpace([]byte(vkey))))
	if err != nil {
		return nil, fmt.Errorf("verifier key %q: %w", vkey, err)
	}
	return v, nil
}

// scanLog reads every checkpoint and record of the log. Its error is the
// first problem nothing may repair; a torn final line or checkpoint is
// left in the scan for the caller. v may be nil only if the checkpoint
// file holds no checkpoint.
func scanLog(ly layout, v note.Verifier) (scan, error) {
	var s scan
	cps, tail, tailAt, err := readCheckpoints(ly.ckpts, v)
	if err != nil {
		return s, err
	}
	s.cps, s.ckTail, s.ckTailAt = cps, tail, tailAt
	if len(tail) == 0 {
		s.ckTail = nil
	}
	s.Checkpoints = len(cps)

	// Nodes of the consistency proof between each two checkpoints.
	coll := newNodeCollector()
	type pair struct {
		a, b  Checkpoint
		nodes proof.Nodes
	}
	var pairs []pair
	for i := 1; i < len(cps); i++ {
		a, b := cps[i-1], cps[i]
		if a.Size == 0 || a.Size == b.Size {
			continue
		}
		n, err := proof.Consistency(a.Size, b.Size)
		if err != nil {
			return s, err
		}
		coll.add(n.IDs)
		pairs = append(pairs, pair{a, b, n})
	}
	var visit compact.VisitFn
	if len(pairs) > 0 {
		visit = coll.visit
	}

	ci := 0
	var cpErr error
	check := func(size uint64) {
		for cpErr == nil && ci < len(cps) && cps[ci].Size == size {
			if root := rootOf(s.tree); !bytes.Equal(root, cps[ci].Root) {
				cpErr = &CheckpointError{Index: cps[ci].Index, Offset: cps[ci].Offset, Size: size, File: ly.ckpts,
					Reason: fmt.Sprintf("root hash %s does not match %s, the tree of the log's first %d records: records %s were changed and their chain recomputed, or the checkpoint was forged", encodeRoot(cps[ci].Root), encodeRoot(root), size, changedRange(cps, ci))}
			}
			ci++
		}
	}
	s.tree = rangeFactory.NewEmptyRange(0)
	check(0)
	if cpErr != nil {
		return s, cpErr
	}
	var segEnds []uint64
	files, err := ly.files()
	if err != nil {
		return s, fmt.Errorf("verify audit log %s: %w", ly.active, err)
	}
	s.Files = files
	s.segments = len(files) - 1
	var chainErr error
	sum, err := scanChainFiles(files, func(line []byte) {
		if cpErr != nil {
			return
		}
		s.tree.Append(leafHash(line), visit)
		check(s.tree.End())
	}, func(end uint64) { segEnds = append(segEnds, end) })
	s.Summary = sum
	var ve *VerifyError
	switch {
	case cpErr != nil:
		return s, cpErr
	case errors.As(err, &ve) && ve.torn != nil:
		s.torn = ve
	case err != nil:
		chainErr = err
	}
	if chainErr != nil {
		return s, chainErr
	}
	records := s.tree.End()
	if ci < len(cps) {
		c := cps[ci]
		return s, &CheckpointError{Index: c.Index, Offset: c.Offset, Size: c.Size, File: ly.ckpts,
			Reason: fmt.Sprintf("covers %d records but the log holds only %d: %s removed (the log was truncated past a checkpoint)", c.Size, records, seqRange(records+1, c.Size))}
	}
	for i, end := range segEnds {
		if !coveredExactly(cps, end) {
			return s, &CheckpointError{File: ly.ckpts,
				Reason: fmt.Sprintf("no checkpoint covers exactly the end of sealed segment %s (record %d), and rotation always writes one first: checkpoints were removed, or records moved between segments", filepath.Base(files[i]), end)}
		}
	}
	for _, p := range pairs {
		hashes, ok := coll.hashes(p.nodes.IDs)
		if !ok {
			return s, fmt.Errorf("consistency proof %d -> %d: missing nodes", p.a.Size, p.b.Size)
		}
		pr, err := p.nodes.Rehash(hashes, hasher.HashChildren)
		if err == nil {
			err = proof.VerifyConsistency(hasher, p.a.Size, p.b.Size, pr, p.a.Root, p.b.Root)
		}
		if err != nil {
			return s, &CheckpointError{Index: p.b.Index, Offset: p.b.Offset, Size: p.b.Size, File: ly.ckpts,
				Reason: fmt.Sprintf("the tree of size %d is not consistent with checkpoint %d's of size %d: %v", p.b.Size, p.a.Index, p.a.Size, err)}
		}
	}
	s.Root = rootOf(s.tree)
	if len(cps) > 0 {
		last := cps[len(cps)-1]
		s.Last = &last
		s.Covered, s.Final = last.Size, last.Final
	}
	s.Uncovered = records - s.Covered
	return s, nil
}

// changedRange says which records a checkpoint that does not match its
// records covers beyond the previous checkpoint, which did match.
func changedRange(cps []Checkpoint, i int) string {
	from := uint64(1)
	for j := i - 1; j >= 0; j-- {
		if cps[j].Size < cps[i].Size {
			from = cps[j].Size + 1
			break
		}
	}
	return fmt.Sprintf("%d to %d (or earlier ones)", from, cps[i].Size)
}

func coveredExactly(cps []Checkpoint, size uint64) bool {
	for _, c := range cps {
		if c.Size == size {
			return true
		}
	}
	return false
}

// scanChainFiles is scanChain over a list of files; segEnd is called with
// the last seq of each sealed segment.
func scanChainFiles(files []string, fn func(line []byte), segEnd func(uint64)) (Summary, error) {
	c := newChain()
	for i, name := range files {
		sealed := i < len(files)-1
		f, err := os.Open(name)
		if err != nil {
			if !sealed && len(files) > 1 && errors.Is(err, os.ErrNotExist) {
				c.sum.Size = 0
				break
			}
			return c.sum, fmt.Errorf("verify audit log: %w", err)
		}
		c.sum.Size = 0
		err = c.walk(f, fn)
		f.Close()
		var ve *VerifyError
		if errors.As(err, &ve) {
			if sealed {
				ve.File = filepath.Base(name)
				if ve.torn != nil {
					ve.torn = nil
					ve.Reason = "sealed segment ends in an incomplete line: damaged"
				}
			}
			return c.sum, ve
		}
		if err != nil {
			return c.sum, fmt.Errorf("verify audit log %s: %w", name, err)
		}
		if sealed && segEnd != nil {
			segEnd(c.sum.LastSeq)
		}
	}
	return c.sum, nil
}

// seqRange names records from to to: "record 5 was" or "records 5 to 9 were".
func seqRange(from, to uint64) string {
	if from == to {
		return fmt.Sprintf("record %d was", from)
	}
	return fmt.Sprintf("records %d to %d were", from, to)
}
