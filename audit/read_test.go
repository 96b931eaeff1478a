package audit

import (
	"context"
	"path/filepath"
	"testing"
)

func TestReadFromSeq(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := l.Record(context.Background(), Event{Type: TypeFunctionCreated, Decision: Allow, Details: map[string]string{"env": "a"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		since, stop uint64
		want        []uint64
	}{
		{"all", 0, 0, []uint64{1, 2, 3, 4, 5}},
		{"since 3", 3, 0, []uint64{3, 4, 5}},
		{"past the end", 9, 0, nil},
		{"stopped", 2, 3, []uint64{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			prev := ""
			err := Read(path, tt.since, func(r Record) error {
				if !r.HashOK() {
					t.Errorf("record %d: hash does not verify", r.Seq)
				}
				if prev != "" && r.Prev != prev {
					t.Errorf("record %d: prev %s, want %s", r.Seq, r.Prev, prev)
				}
				prev = r.Hash
				got = append(got, r.Seq)
				if r.Seq == tt.stop {
					return ErrStop
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got seqs %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got seqs %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestDurableSeq(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.DurableSeq(); got != 0 {
		t.Errorf("empty log: DurableSeq %d, want 0", got)
	}
	for i := 0; i < 3; i++ {
		if err := l.Record(context.Background(), Event{Type: TypeServerStarted, Decision: Allow}); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.DurableSeq(); got != 3 {
		t.Errorf("after 3 records: DurableSeq %d, want 3", got)
	}
}
