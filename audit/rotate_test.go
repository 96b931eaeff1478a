package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Rotation seals full files, each ending at a checkpoint; Verify,
// VerifyLog, Read and proofs walk every segment.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	opts := ckOpts()
	opts.SegmentSize = 2000 // a few records each
	l, err := OpenWithOptions(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		if err := l.Record(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := newLayout(path, "").segments()
	if err != nil || len(segs) < 3 {
		t.Fatalf("segments %v, %v: want several", segs, err)
	}
	rep, err := VerifyLog(dir, nil)
	if err != nil || rep.Records != n || len(rep.Files) != len(segs)+1 {
		t.Fatalf("VerifyLog: %+v, %v", rep, err)
	}
	if sum, err := Verify(path); err != nil || sum.Records != n {
		t.Fatalf("Verify: %+v, %v", sum, err)
	}
	var seqs []uint64
	if err := Read(path, 3, func(r Record) error { seqs = append(seqs, r.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seqs) != n-2 || seqs[0] != 3 || seqs[len(seqs)-1] != n {
		t.Errorf("Read from 3 over segments: %v", seqs)
	}
	v := verifierOf(t, dir)
	for _, seq := range []uint64{1, 17, n} {
		doc, err := ProveInclusion(dir, seq)
		if err == nil {
			_, err = VerifyProof(doc, v)
		}
		if err != nil {
			t.Errorf("proof of %d: %v", seq, err)
		}
	}
	// The log goes on after a reopen.
	l, err = OpenWithOptions(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	l.Record(context.Background(), testEvent(1))
	l.Close()
	if _, err := VerifyLog(dir, nil); err != nil {
		t.Fatal(err)
	}

	// A sealed segment removed, or changed, is named.
	bad := copyDir(t, dir)
	os.Remove(filepath.Join(bad, "audit-000002.log"))
	if _, err := VerifyLog(bad, nil); err == nil {
		t.Error("VerifyLog accepted a log with a segment removed")
	} else {
		t.Logf("segment removed: %v", err)
	}
	bad = copyDir(t, dir)
	editFile(t, filepath.Join(bad, "audit-000001.log"), func(b []byte) []byte { b[30] ^= 1; return b })
	_, err = VerifyLog(bad, nil)
	var ve *VerifyError
	if !asVerifyError(err, &ve) || ve.File != "audit-000001.log" || ve.Seq != 1 {
		t.Errorf("changed byte in a sealed segment: %v", err)
	}
	// The checkpoint that sealed a segment removed.
	bad = copyDir(t, dir)
	var end uint64
	Read(filepath.Join(bad, "audit-000001.log"), 0, func(r Record) error { end = r.Seq; return nil })
	editFile(t, filepath.Join(bad, "audit.checkpoints"), func(b []byte) []byte {
		var keep [][]byte
		for _, n := range splitNotes(t, b) {
			if !bytes.HasPrefix(n, []byte(fmt.Sprintf("h-test\n%d\n", end))) {
				keep = append(keep, n)
			}
		}
		return bytes.Join(keep, nil)
	})
	if _, err := VerifyLog(bad, nil); err == nil || !strings.Contains(err.Error(), "end of sealed segment audit-000001.log") {
		t.Errorf("segment checkpoint removed: %v", err)
	}
	// Removing the last sealed segment and the active file's records
	// too leaves checkpoints covering more than the log holds.
	bad = copyDir(t, dir)
	last := filepath.Base(newLayout(path, "").segment(len(segs)))
	os.Remove(filepath.Join(bad, last))
	os.Remove(filepath.Join(bad, "audit.log"))
	if _, err := VerifyLog(bad, nil); err == nil {
		t.Error("VerifyLog accepted a log cut at a segment boundary")
	} else {
		t.Logf("cut at a segment: %v", err)
	}
}

func asVerifyError(err error, ve **VerifyError) bool {
	v, ok := err.(*VerifyError)
	*ve = v
	return ok
}

// A quiet log is checkpointed after CheckpointInterval.
func TestCheckpointInterval(t *testing.T) {
	dir := t.TempDir()
	opts := ckOpts()
	opts.CheckpointInterval = 10 * time.Millisecond
	l, err := OpenWithOptions(filepath.Join(dir, "audit.log"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 3 {
		l.Record(context.Background(), testEvent(i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp, _ := l.LatestCheckpoint()
		if strings.HasPrefix(string(cp), "h-test\n3\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of 3 records within 5 s; latest %q", cp)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Many writers while checkpoints (by count and by time) and rotations
// happen: every record is in the log, and it all verifies.
func TestConcurrentCheckpointsAndRotation(t *testing.T) {
	dir := t.TempDir()
	opts := ckOpts()
	opts.CheckpointEvery = 7
	opts.CheckpointInterval = time.Millisecond
	opts.SegmentSize = 8000
	l, err := OpenWithOptions(filepath.Join(dir, "audit.log"), opts)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 150
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				if err := l.Record(context.Background(), testEvent(g*each+i)); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 49 {
					if _, err := l.InclusionProof(1); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := l.CheckpointErr(); err != nil {
		t.Error(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyLog(dir, nil)
	if err != nil || rep.Records != writers*each || len(rep.Files) < 3 {
		t.Fatalf("%d records in %d files, %d checkpoints: %v", rep.Records, len(rep.Files), rep.Checkpoints, err)
	}
	t.Logf("%d records in %d files, %d checkpoints", rep.Records, len(rep.Files), rep.Checkpoints)
}
