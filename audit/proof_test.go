package audit

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func verifierOf(t *testing.T, dir string) note.Verifier {
	t.Helper()
	pub, err := PublicKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInclusionProofs(t *testing.T) {
	const n = 23
	dir := writeDir(t, n, ckOpts())
	v := verifierOf(t, dir)
	for seq := uint64(1); seq <= n; seq++ {
		doc, err := ProveInclusion(dir, seq)
		if err != nil {
			t.Fatalf("prove %d: %v", seq, err)
		}
		p, err := VerifyInclusionProof(doc, v)
		if err != nil {
			t.Fatalf("verify proof of %d: %v\n%s", seq, err, doc)
		}
		if p.Seq != seq || p.TreeSize != n {
			t.Errorf("proof %+v", p)
		}
	}
	if _, err := ProveInclusion(dir, n+1); err == nil || !strings.Contains(err.Error(), "not covered by a checkpoint yet") {
		t.Errorf("prove beyond the checkpoint: %v", err)
	}

	doc, _ := ProveInclusion(dir, 7)
	tampered := []struct {
		name, want string
		edit       func(*InclusionProof)
	}{
		{"record changed", "not a sealed record", func(p *InclusionProof) {
			p.Record = strings.Replace(p.Record, `"reason":"ok"`, `"reason":"OK"`, 1)
		}},
		{"other record", "not a sealed record of seq 7", func(p *InclusionProof) {
			other, _ := ProveInclusion(dir, 8)
			var q InclusionProof
			json.Unmarshal(other, &q)
			p.Record = q.Record
		}},
		{"proof hash changed", "not in the tree", func(p *InclusionProof) {
			p.Proof[0] = p.Proof[1]
		}},
		{"checkpoint changed", "does not verify", func(p *InclusionProof) {
			p.Checkpoint = strings.Replace(p.Checkpoint, "\n23\n", "\n24\n", 1)
		}},
		{"leaf index", "leaf_index", func(p *InclusionProof) { p.LeafIndex = 3 }},
	}
	for _, tt := range tampered {
		t.Run(tt.name, func(t *testing.T) {
			var p InclusionProof
			if err := json.Unmarshal(doc, &p); err != nil {
				t.Fatal(err)
			}
			tt.edit(&p)
			b, _ := json.Marshal(p)
			if _, err := VerifyProof(b, v); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// Another key does not verify it.
	_, vkey, _ := note.GenerateKey(nil, "h-test")
	other, _ := note.NewVerifier(vkey)
	if _, err := VerifyProof(doc, other); err == nil || !strings.Contains(err.Error(), "not signed by key") {
		t.Errorf("other key: %v", err)
	}
}

func TestConsistencyProofs(t *testing.T) {
	dir := writeDir(t, 23, ckOpts())
	v := verifierOf(t, dir)
	for _, sz := range [][2]uint64{{5, 10}, {5, 23}, {10, 15}, {20, 23}, {23, 23}, {15, 0}} {
		doc, err := ProveConsistency(dir, sz[0], sz[1])
		if err != nil {
			t.Fatalf("prove %v: %v", sz, err)
		}
		kind, err := VerifyProof(doc, v)
		if err != nil || kind != ConsistencyProofType {
			t.Fatalf("verify %v: %s %v\n%s", sz, kind, err, doc)
		}
	}
	if _, err := ProveConsistency(dir, 7, 10); err == nil || !strings.Contains(err.Error(), "no checkpoint of size 7") {
		t.Errorf("size without a checkpoint: %v", err)
	}
	doc, _ := ProveConsistency(dir, 5, 23)
	var p ConsistencyProof
	json.Unmarshal(doc, &p)
	p.Proof[0] = p.Proof[len(p.Proof)-1]
	b, _ := json.Marshal(p)
	if _, err := VerifyProof(b, v); err == nil || !strings.Contains(err.Error(), "does not extend") {
		t.Errorf("tampered consistency proof: %v", err)
	}
}

// The methods the gRPC AuditService calls, on a log being written.
func TestLogProofMethods(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenWithOptions(filepath.Join(dir, "audit.log"), ckOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 12 {
		l.Record(context.Background(), testEvent(i))
	}
	cp, err := l.LatestCheckpoint()
	if err != nil || !strings.HasPrefix(string(cp), "h-test\n10\n") {
		t.Fatalf("LatestCheckpoint = %q, %v", cp, err)
	}
	v, _ := NewVerifier(l.VerifierKey())
	doc, err := l.InclusionProof(3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyProof(doc, v); err != nil {
		t.Error(err)
	}
	if _, err := l.InclusionProof(11); err == nil {
		t.Error("proof of a record no checkpoint covers yet")
	}
	doc, err = l.ConsistencyProof(5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyProof(doc, v); err != nil {
		t.Error(err)
	}
}
