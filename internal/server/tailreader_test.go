package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/audit"
)

// TestLogFollower: a follower reads each record once, with its line as
// in the file, from where it stopped, up to the durable seq it is given;
// a replaced file is opened again, and records missing from it are an
// error naming the seq to tail from.
func TestLogFollower(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(n int) {
		for range n {
			if err := l.Record(context.Background(), audit.Event{Type: audit.TypeFunctionCreated, Decision: audit.Allow}); err != nil {
				t.Fatal(err)
			}
		}
	}
	lf := &logFollower{path: path}
	defer lf.close()
	var got []uint64
	var lines [][]byte
	collect := func(r audit.Record, line []byte) error {
		got = append(got, r.Seq)
		lines = append(lines, bytes.Clone(line))
		return nil
	}
	write(5)
	next, err := lf.read(3, 4, collect)
	if err != nil || next != 5 || len(got) != 2 || got[0] != 3 || got[1] != 4 {
		t.Fatalf("since 3 upto 4: next %d, seqs %v, %v", next, got, err)
	}
	write(3)
	if next, err = lf.read(next, l.DurableSeq(), collect); err != nil || next != 9 || len(got) != 6 {
		t.Fatalf("then up to 8: next %d, seqs %v, %v", next, got, err)
	}
	data, _ := os.ReadFile(path)
	file := bytes.Split(data, []byte("\n"))
	for i, seq := range got {
		if !bytes.Equal(lines[i], file[seq-1]) {
			t.Errorf("record %d: line %s, want %s", seq, lines[i], file[seq-1])
		}
	}
	// Nothing new: nothing read.
	if n, err := lf.read(next, l.DurableSeq(), collect); err != nil || n != next || len(got) != 6 {
		t.Errorf("nothing new: next %d, seqs %v, %v", n, got, err)
	}
	l.Close()

	// Rotated: the file is renamed and a new one holds what follows. The
	// follower reads the old one to its end, then the new one.
	other := filepath.Join(dir, "other.log")
	ol, err := audit.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		ol.Record(context.Background(), audit.Event{Type: audit.TypeFunctionDeleted, Decision: audit.Allow})
	}
	ol.Close()
	odata, _ := os.ReadFile(other)
	olines := bytes.Split(odata, []byte("\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(bytes.Join(olines[8:10], []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := lf.read(9, 10, collect); err != nil || n != 11 || got[len(got)-1] != 10 || !bytes.Equal(lines[len(lines)-1], olines[9]) {
		t.Errorf("after a rotation: next %d, seqs %v, %v", n, got, err)
	}
	// A file without the durable records it should hold.
	if n, err := lf.read(11, 12, collect); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "ends before durable record 12") || n != 11 {
		t.Errorf("a file without the durable records: next %d, %v", n, err)
	}
	// One that lacks records before those it holds.
	lf.close()
	if _, err := lf.read(3, 10, collect); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "records 3 to 8") || !strings.Contains(err.Error(), "since_seq 9") {
		t.Errorf("records missing: %v", err)
	}
}
