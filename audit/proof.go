package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// Proof document types (the "type" field).
const (
	InclusionProofType   = "udfhost.audit.inclusion/v1"
	ConsistencyProofType = "udfhost.audit.consistency/v1"
)

// InclusionProof proves that one record is in the log, against a signed
// checkpoint: hashing Record (the exact line, without its newline) as
// leaf LeafIndex and combining it with Proof as RFC 6962 (RFC 9162 2.1.3)
// says gives the root hash in Checkpoint, a note signed by the host's key.
type InclusionProof struct {
	Type       string   `json:"type"`       // InclusionProofType
	Seq        uint64   `json:"seq"`        // the record's seq
	LeafIndex  uint64   `json:"leaf_index"` // seq - 1
	TreeSize   uint64   `json:"tree_size"`  // the checkpoint's size
	Record     string   `json:"record"`     // the record's line, without its newline
	LeafHash   string   `json:"leaf_hash"`  // base64 sha256(0x00 || record)
	Proof      []string `json:"proof"`      // base64 node hashes, leaf to root
	Checkpoint string   `json:"checkpoint"` // the signed checkpoint note
}

// ConsistencyProof proves that the log of NewSize records extends the log
// of OldSize records: RFC 6962 (RFC 9162 2.1.4) consistency between the
// root hashes of two signed checkpoints.
type ConsistencyProof struct {
	Type          string   `json:"type"` // ConsistencyProofType
	OldSize       uint64   `json:"old_size"`
	NewSize       uint64   `json:"new_size"`
	Proof         []string `json:"proof"` // base64 node hashes
	OldCheckpoint string   `json:"old_checkpoint"`
	NewCheckpoint string   `json:"new_checkpoint"`
}

// ProveInclusion returns the inclusion proof of record seq in the log in
// dirOrPath against its latest checkpoint, as a JSON document. The
// checkpoints are checked with the key next to the log.
func ProveInclusion(dirOrPath string, seq uint64) ([]byte, error) {
	ly, k, cps, err := checkpointsOf(dirOrPath)
	if err != nil {
		return nil, err
	}
	if len(cps) == 0 {
		return nil, errors.New("prove record: the log has no checkpoint yet")
	}
	if _, err := openCheckpoint(cps[len(cps)-1].Note, k.verifier); err != nil {
		return nil, fmt.Errorf("prove record: the latest checkpoint: %w", err)
	}
	return proveInclusion(ly, cps[len(cps)-1], seq)
}

// ProveConsistency returns the consistency proof between the log's
// checkpoints of oldSize and newSize records (0: the latest), as a JSON
// document.
func ProveConsistency(dirOrPath string, oldSize, newSize uint64) ([]byte, error) {
	ly, k, cps, err := checkpointsOf(dirOrPath)
	if err != nil {
		return nil, err
	}
	return proveConsistency(ly, cps, oldSize, newSize, k.verifier)
}

// checkpointsOf opens what a proof of the log in dirOrPath is made from:
// its layout, the key next to it and its checkpoints, oldest first.
func checkpointsOf(dirOrPath string) (layout, signerKey, []Checkpoint, error) {
	ly := resolve(dirOrPath, "")
	k, err := loadKey(ly.key)
	if err != nil {
		return ly, signerKey{}, nil, err
	}
	cps, err := listCheckpoints(ly.ckpts)
	return ly, k, cps, err
}

// LatestCheckpoint returns the latest signed checkpoint note.
func (l *Log) LatestCheckpoint() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ckpt.Note == nil {
		return nil, errors.New("latest checkpoint: none written yet")
	}
	return bytes.Clone(l.ckpt.Note), nil
}

// InclusionProof returns the JSON inclusion proof of record seq against
// the latest checkpoint (see InclusionProof). A record not yet covered by
// a checkpoint cannot be proved: the error says when it will be.
func (l *Log) InclusionProof(seq uint64) ([]byte, error) {
	l.mu.Lock()
	cp := l.ckpt
	l.mu.Unlock()
	var doc []byte
	var err error
	for range 3 { // a rotation between listing and reading the files
		if doc, err = proveInclusion(l.ly, cp, seq); err == nil || seq > cp.Size {
			break
		}
	}
	return doc, err
}

// ConsistencyProof returns the JSON consistency proof between the
// checkpoints of oldSize and newSize records (newSize 0: the latest).
func (l *Log) ConsistencyProof(oldSize, newSize uint64) ([]byte, error) {
	cps, err := listCheckpoints(l.ly.ckpts)
	if err != nil {
		return nil, err
	}
	var doc []byte
	for range 3 { // a rotation between listing and reading the files
		if doc, err = proveConsistency(l.ly, cps, oldSize, newSize, l.key.verifier); err == nil {
			break
		}
	}
	return doc, err
}

var errShort = errors.New("the log holds fewer records than the checkpoint covers")

func proveInclusion(ly layout, cp Checkpoint, seq uint64) ([]byte, error) {
	if seq == 0 {
		return nil, errors.New("prove record: seqs start at 1")
	}
	if seq > cp.Size {
		return nil, fmt.Errorf("prove record %d: not covered by a checkpoint yet (the latest covers %d records; one is written every few seconds)", seq, cp.Size)
	}
	nodes, err := proof.Inclusion(seq-1, cp.Size)
	if err != nil {
		return nil, err
	}
	hashes, line, err := collect(ly, cp, nodes.IDs, seq)
	if err != nil {
		return nil, fmt.Errorf("prove record %d: %w", seq, err)
	}
	pr, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, err
	}
	leaf := leafHash(line)
	if err := proof.VerifyInclusion(hasher, seq-1, cp.Size, leaf, pr, cp.Root); err != nil {
		return nil, fmt.Errorf("prove record %d: the records do not match checkpoint %d (run udfhost audit verify): %w", seq, cp.Index, err)
	}
	return marshalDoc(InclusionProof{Type: InclusionProofType, Seq: seq, LeafIndex: seq - 1, TreeSize: cp.Size,
		Record: string(line), LeafHash: b64(leaf), Proof: b64s(pr), Checkpoint: string(cp.Note)})
}

func proveConsistency(ly layout, cps []Checkpoint, oldSize, newSize uint64, v note.Verifier) ([]byte, error) {
	if len(cps) == 0 {
		return nil, errors.New("prove consistency: the log has no checkpoint yet")
	}
	find := func(size uint64) (Checkpoint, error) {
		if size == 0 {
			return cps[len(cps)-1], nil
		}
		for i := len(cps) - 1; i >= 0; i-- {
			if cps[i].Size == size {
				return cps[i], nil
			}
		}
		return Checkpoint{}, fmt.Errorf("no checkpoint of size %d (sizes: %s)", size, sizes(cps))
	}
	newCp, err := find(newSize)
	if err != nil {
		return nil, fmt.Errorf("prove consistency: %w", err)
	}
	if oldSize == 0 {
		return nil, errors.New("prove consistency: the old size must be a checkpoint's size, at least 1")
	}
	oldCp, err := find(oldSize)
	if err != nil {
		return nil, fmt.Errorf("prove consistency: %w", err)
	}
	for _, c := range []Checkpoint{oldCp, newCp} {
		if _, err := openCheckpoint(c.Note, v); err != nil {
			return nil, fmt.Errorf("prove consistency: checkpoint %d: %w", c.Index, err)
		}
	}
	if oldCp.Size > newCp.Size {
		return nil, fmt.Errorf("prove consistency: old size %d is larger than new size %d", oldCp.Size, newCp.Size)
	}
	nodes, err := proof.Consistency(oldCp.Size, newCp.Size)
	if err != nil {
		return nil, err
	}
	hashes, _, err := collect(ly, newCp, nodes.IDs, 0)
	if err != nil {
		return nil, fmt.Errorf("prove consistency: %w", err)
	}
	pr, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, err
	}
	if err := proof.VerifyConsistency(hasher, oldCp.Size, newCp.Size, pr, oldCp.Root, newCp.Root); err != nil {
		return nil, fmt.Errorf("prove consistency: the records do not match the checkpoints (run udfhost audit verify): %w", err)
	}
	return marshalDoc(ConsistencyProof{Type: ConsistencyProofType, OldSize: oldCp.Size, NewSize: newCp.Size,
		Proof: b64s(pr), OldCheckpoint: string(oldCp.Note), NewCheckpoint: string(newCp.Note)})
}

// collect walks the log's first cp.Size records, checking their chain,
// and returns the hashes of the tree nodes ids, and the line of record
// seq if seq > 0.
func collect(ly layout, cp Checkpoint, ids []compact.NodeID, seq uint64) ([][]byte, []byte, error) {
	files, err := ly.files()
	if err != nil {
		return nil, nil, err
	}
	coll := newNodeCollector()
	coll.add(ids)
	tree := rangeFactory.NewEmptyRange(0)
	var line []byte
	_, err = scanChainFiles(files, func(l []byte) {
		if tree.End() >= cp.Size {
			return
		}
		if tree.End()+1 == seq {
			line = bytes.Clone(l)
		}
		tree.Append(leafHash(l), coll.visit)
	}, nil)
	var ve *VerifyError
	if err != nil && !(errors.As(err, &ve) && ve.torn != nil) {
		if tree.End() < cp.Size {
			return nil, nil, err
		}
	}
	if tree.End() < cp.Size {
		return nil, nil, fmt.Errorf("%w (%d of %d)", errShort, tree.End(), cp.Size)
	}
	hashes, ok := coll.hashes(ids)
	if !ok {
		return nil, nil, errors.New("missing tree nodes")
	}
	return hashes, line, nil
}

// VerifyProof checks a proof document (inclusion or consistency) with
// nothing but the verifier key, and returns its type.
func VerifyProof(doc []byte, v note.Verifier) (string, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(doc, &head); err != nil {
		return "", fmt.Errorf("proof: not a JSON document: %w", err)
	}
	switch head.Type {
	case InclusionProofType:
		_, err := VerifyInclusionProof(doc, v)
		return head.Type, err
	case ConsistencyProofType:
		_, err := VerifyConsistencyProof(doc, v)
		return head.Type, err
	default:
		return head.Type, fmt.Errorf("proof: unknown type %q (want %s or %s)", head.Type, InclusionProofType, ConsistencyProofType)
	}
}

// VerifyInclusionProof checks an inclusion proof document: the
// checkpoint's signature with v, that the record is the sealed record of
// that seq, and that it is leaf seq-1 of the checkpoint's tree.
func VerifyInclusionProof(doc []byte, v note.Verifier) (InclusionProof, error) {
	var p InclusionProof
	if err := strictUnmarshal(doc, &p); err != nil {
		return p, fmt.Errorf("inclusion proof: %w", err)
	}
	cp, err := openCheckpoint([]byte(p.Checkpoint), v)
	if err != nil {
		return p, fmt.Errorf("inclusion proof: checkpoint: %w", err)
	}
	if cp.Size != p.TreeSize {
		return p, fmt.Errorf("inclusion proof: tree_size %d, but the checkpoint's size is %d", p.TreeSize, cp.Size)
	}
	if p.Seq == 0 || p.LeafIndex != p.Seq-1 {
		return p, fmt.Errorf("inclusion proof: leaf_index %d is not seq %d - 1", p.LeafIndex, p.Seq)
	}
	var r Record
	if err := json.Unmarshal([]byte(p.Record), &r); err != nil {
		return p, fmt.Errorf("inclusion proof: record: %w", err)
	}
	body, hash, ok := unseal([]byte(p.Record))
	if !ok || r.Seq != p.Seq || !r.HashOK() || r.Hash != hash || !bytes.Equal(mustBody(r), body) {
		return p, fmt.Errorf("inclusion proof: the record is not a sealed record of seq %d", p.Seq)
	}
	leaf := leafHash([]byte(p.Record))
	if p.LeafHash != b64(leaf) {
		return p, errors.New("inclusion proof: leaf_hash is not the hash of the record")
	}
	pr, err := unb64s(p.Proof)
	if err != nil {
		return p, fmt.Errorf("inclusion proof: %w", err)
	}
	if err := proof.VerifyInclusion(hasher, p.LeafIndex, p.TreeSize, leaf, pr, cp.Root); err != nil {
		return p, fmt.Errorf("inclusion proof: record %d is not in the tree the checkpoint signs: %w", p.Seq, err)
	}
	return p, nil
}

// VerifyConsistencyProof checks a consistency proof document: both
// checkpoints' signatures with v, and that the newer tree extends the
// older.
func VerifyConsistencyProof(doc []byte, v note.Verifier) (ConsistencyProof, error) {
	var p ConsistencyProof
	if err := strictUnmarshal(doc, &p); err != nil {
		return p, fmt.Errorf("consistency proof: %w", err)
	}
	oldCp, err := openCheckpoint([]byte(p.OldCheckpoint), v)
	if err != nil {
		return p, fmt.Errorf("consistency proof: old checkpoint: %w", err)
	}
	newCp, err := openCheckpoint([]byte(p.NewCheckpoint), v)
	if err != nil {
		return p, fmt.Errorf("consistency proof: new checkpoint: %w", err)
	}
	if oldCp.Size != p.OldSize || newCp.Size != p.NewSize {
		return p, fmt.Errorf("consistency proof: sizes %d and %d, but the checkpoints' are %d and %d", p.OldSize, p.NewSize, oldCp.Size, newCp.Size)
	}
	pr, err := unb64s(p.Proof)
	if err != nil {
		return p, fmt.Errorf("consistency proof: %w", err)
	}
	if err := proof.VerifyConsistency(hasher, p.OldSize, p.NewSize, pr, oldCp.Root, newCp.Root); err != nil {
		return p, fmt.Errorf("consistency proof: the tree of %d records does not extend the tree of %d: %w", p.NewSize, p.OldSize, err)
	}
	return p, nil
}

func mustBody(r Record) []byte {
	b, _ := r.body()
	return b
}

func strictUnmarshal(doc []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func marshalDoc(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func b64s(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b64(b)
	}
	return out
}

func unb64s(ss []string) ([][]byte, error) {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != hasher.Size() {
			return nil, fmt.Errorf("proof hash %d is not a base64 sha256", i+1)
		}
		out[i] = b
	}
	return out, nil
}

func sizes(cps []Checkpoint) string {
	var b bytes.Buffer
	for i, c := range cps {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 8 && len(cps) > 10 {
			fmt.Fprintf(&b, "… %d more …, %d", len(cps)-9, cps[len(cps)-1].Size)
			break
		}
		b.WriteString(sizeString(c.Size))
	}
	return b.String()
}
