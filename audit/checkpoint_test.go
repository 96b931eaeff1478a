package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// ckOpts checkpoints every 5 records.
func ckOpts() Options { return Options{Now: stepClock(), CheckpointEvery: 5, Host: "h-test"} }

// writeDir writes a log of n records in a new directory with a
// checkpoint every 5 records, closes it and returns the directory.
func writeDir(t *testing.T, n int, opts Options) string {
	t.Helper()
	dir := t.TempDir()
	l, err := OpenWithOptions(filepath.Join(dir, "audit.log"), opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Record(context.Background(), testEvent(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// crash stops l as SIGKILL would: no final checkpoint.
func (l *Log) crash() {
	l.mu.Lock()
	l.closed = true
	for l.flushing {
		l.idle.Wait()
	}
	l.mu.Unlock()
	close(l.stop)
	l.ticker.Wait()
	clearAppendOnly(l.f)
	clearAppendOnly(l.ckf)
	l.f.Close()
	l.ckf.Close()
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func editFile(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// splitLines returns the lines of data, each with its newline.
func splitLines(data []byte) [][]byte {
	ls := bytes.SplitAfter(data, []byte("\n"))
	if len(ls[len(ls)-1]) == 0 {
		ls = ls[:len(ls)-1]
	}
	return ls
}

// forge appends k records chained onto the last one, as someone who can
// write the file but not sign would.
func forge(t *testing.T, data []byte, k int) []byte {
	t.Helper()
	ls := splitLines(data)
	var last Record
	if err := jsonUnmarshal(ls[len(ls)-1], &last); err != nil {
		t.Fatal(err)
	}
	for i := range k {
		line, r, err := encode(newRecord(last.Seq+1, last.Time, last.Hash, last.Host, testEvent(100+i)))
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, line...)
		last = r
	}
	return data
}

// rechain rewrites every record from seq on with a recomputed chain after
// edit changes record seq.
func rechain(t *testing.T, data []byte, seq int, edit func([]byte) []byte) []byte {
	t.Helper()
	ls := splitLines(data)
	prev := GenesisHash
	var out []byte
	for i, l := range ls {
		var r Record
		if err := jsonUnmarshal(l, &r); err != nil {
			t.Fatal(err)
		}
		if i+1 >= seq {
			body, _ := r.body()
			if i+1 == seq {
				body = edit(body)
			}
			var nr Record
			if err := jsonUnmarshal(body, &nr); err != nil {
				t.Fatal(err)
			}
			nr.Prev = prev
			line, sealed, err := encode(nr)
			if err != nil {
				t.Fatal(err)
			}
			l, r = line, sealed
		}
		prev = r.Hash
		out = append(out, l...)
	}
	return out
}

// notes returns the checkpoint file's notes, each with its blank line.
func notes(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raws, tail := splitCheckpoints(b)
	if len(tail) != 0 {
		t.Fatalf("checkpoint file has a tail %q", tail)
	}
	var out [][]byte
	for _, r := range raws {
		out = append(out, append(bytes.Clone(r.note), '\n'))
	}
	return out
}

func TestCheckpointsWritten(t *testing.T) {
	dir := writeDir(t, 12, ckOpts())
	rep, err := VerifyLog(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Open (0), every 5 (5, 10), Close (12, final).
	if rep.Checkpoints != 4 || rep.Covered != 12 || !rep.Final || rep.Uncovered != 0 || rep.Records != 12 {
		t.Errorf("report %+v", rep)
	}
	ns := notes(t, filepath.Join(dir, "audit.checkpoints"))
	if !bytes.HasPrefix(ns[3], []byte("h-test\n12\n")) || !bytes.Contains(ns[3], []byte("\n"+FinalLine+"\n\n— h-test ")) {
		t.Errorf("final checkpoint:\n%s", ns[3])
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v", fi, err)
	}
	pub, err := PublicKey(dir)
	if err != nil || !strings.HasPrefix(pub, "h-test+") {
		t.Fatalf("PublicKey = %q, %v", pub, err)
	}
	v, err := NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyLog(filepath.Join(dir, "audit.log"), v); err != nil {
		t.Errorf("VerifyLog with the public key: %v", err)
	}
}

// Every tamper case names the first bad record or checkpoint, and Open
// refuses the log without changing it.
func TestTamperCases(t *testing.T) {
	const n = 20
	orig := writeDir(t, n, ckOpts())
	otherSigner := func(t *testing.T) note.Signer {
		skey, _, err := note.GenerateKey(nil, "h-test")
		if err != nil {
			t.Fatal(err)
		}
		s, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	log := func(dir string) string { return filepath.Join(dir, "audit.log") }
	cks := func(dir string) string { return filepath.Join(dir, "audit.checkpoints") }
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		check  func(t *testing.T, err error)
	}{
		{"changed byte", func(t *testing.T, dir string) {
			editFile(t, log(dir), func(b []byte) []byte {
				i := lineStart(b, 7) + bytes.Index(b[lineStart(b, 7):], []byte(`"reason":"ok"`)) + 10
				b[i] = 'K'
				return b
			})
		}, wantRecord(7, "hash mismatch")},
		{"deleted middle record", func(t *testing.T, dir string) {
			editFile(t, log(dir), func(b []byte) []byte {
				ls := splitLines(b)
				return bytes.Join(append(ls[:7:7], ls[8:]...), nil)
			})
		}, wantRecord(8, "seq is 9, want 8")},
		{"deleted last record", func(t *testing.T, dir string) {
			editFile(t, log(dir), func(b []byte) []byte { return b[:lineStart(b, n)] })
		}, wantCheckpoint("covers 20 records but the log holds only 19")},
		{"reordered records", func(t *testing.T, dir string) {
			editFile(t, log(dir), func(b []byte) []byte {
				ls := splitLines(b)
				ls[2], ls[3] = ls[3], ls[2]
				return bytes.Join(ls, nil)
			})
		}, wantRecord(3, "seq is 4, want 3")},
		{"truncated tail past a checkpoint", func(t *testing.T, dir string) {
			editFile(t, log(dir), func(b []byte) []byte { return b[:lineStart(b, 14)] })
		}, wantCheckpoint("covers 15 records but the log holds only 13")},
		{"truncated mid-record past a checkpoint", func(t *testing.T, dir string) {
			editFile(t, log(dir), func(b []byte) []byte { return b[:lineStart(b, 15)+40] })
		}, wantCheckpoint("covers 15 records but the log holds only 14")},
		{"record changed and chain recomputed", func(t *testing.T, dir string) {
			editFile(t, log(dir), func(b []byte) []byte {
				return rechain(t, b, 12, func(body []byte) []byte {
					return bytes.Replace(body, []byte(`"reason":"ok"`), []byte(`"reason":"OK"`), 1)
				})
			})
		}, wantCheckpoint("does not match", "records 11 to 15")},
		{"checkpoint body edited", func(t *testing.T, dir string) {
			editFile(t, cks(dir), func(b []byte) []byte {
				ns := splitNotes(t, b)
				ns[2] = bytes.Replace(ns[2], []byte("\n10\n"), []byte("\n11\n"), 1)
				return bytes.Join(ns, nil)
			})
		}, wantCheckpoint("checkpoint 3 ", "does not verify")},
		{"checkpoint re-signed with another key", func(t *testing.T, dir string) {
			editFile(t, cks(dir), func(b []byte) []byte {
				ns := splitNotes(t, b)
				msg, err := note.Sign(&note.Note{Text: noteText(ns[1][:len(ns[1])-1])}, otherSigner(t))
				if err != nil {
					t.Fatal(err)
				}
				ns[1] = append(msg, '\n')
				return bytes.Join(ns, nil)
			})
		}, wantCheckpoint("checkpoint 2 ", "not signed by key h-test+")},
		{"records forged after the final checkpoint", func(t *testing.T, dir string) {
			editFile(t, log(dir), func(b []byte) []byte { return forge(t, b, 3) })
		}, wantUncovered(3, true)},
		{"checkpoint file rolled back", func(t *testing.T, dir string) {
			editFile(t, cks(dir), func(b []byte) []byte { return bytes.Join(splitNotes(t, b)[:3], nil) })
		}, wantUncovered(10, false)},
		{"checkpoints reordered", func(t *testing.T, dir string) {
			editFile(t, cks(dir), func(b []byte) []byte {
				ns := splitNotes(t, b)
				ns[2], ns[3] = ns[3], ns[2]
				return bytes.Join(ns, nil)
			})
		}, wantCheckpoint("checkpoint 4 ", "smaller than checkpoint 3's")},
		{"checkpoint file removed", func(t *testing.T, dir string) {
			os.Remove(cks(dir))
		}, wantUncovered(20, false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, orig)
			tt.tamper(t, dir)
			_, err := VerifyLog(dir, nil)
			t.Logf("VerifyLog: %v", err)
			tt.check(t, err)

			before, _ := os.ReadFile(log(dir))
			l, err := Open(log(dir))
			switch {
			case strings.Contains(tt.name, "rolled back"), strings.Contains(tt.name, "removed"):
				// Indistinguishable from an unclean stop: accepted, and
				// recorded.
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				l.Close()
				checkUncoveredRecord(t, log(dir), n)
			case err == nil:
				l.Close()
				t.Fatal("Open accepted a tampered log")
			default:
				tt.check(t, err)
				if !strings.Contains(err.Error(), "refusing to append") || !strings.Contains(err.Error(), "cp -a") {
					t.Errorf("Open: %v; want it to refuse and say how to keep the evidence", err)
				}
				if after, _ := os.ReadFile(log(dir)); !bytes.Equal(after, before) {
					t.Error("Open changed the log")
				}
			}
		})
	}
}

func splitNotes(t *testing.T, b []byte) [][]byte {
	t.Helper()
	raws, tail := splitCheckpoints(b)
	if len(tail) > 0 {
		t.Fatalf("tail %q", tail)
	}
	var out [][]byte
	for _, r := range raws {
		out = append(out, append(bytes.Clone(r.note), '\n'))
	}
	return out
}

func wantRecord(seq uint64, reason string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var ve *VerifyError
		if !errors.As(err, &ve) || ve.Seq != seq || !strings.Contains(ve.Reason, reason) {
			t.Fatalf("err = %v, want record %d: %s", err, seq, reason)
		}
	}
}

func wantCheckpoint(parts ...string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var ce *CheckpointError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v, want a *CheckpointError", err)
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("err = %v, want %q in it", err, p)
			}
		}
	}
}

func wantUncovered(k uint64, final bool) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var ue *UncoveredError
		if !errors.As(err, &ue) || ue.Records != k || ue.Final != final {
			t.Fatalf("err = %v, want %d records not covered (final %v)", err, k, final)
		}
		if !strings.Contains(err.Error(), "records not covered by a signed checkpoint") {
			t.Errorf("message %q", err)
		}
	}
}

// checkUncoveredRecord checks that record seq n+1 says n-covered records
// were not covered, and that the log now verifies.
func checkUncoveredRecord(t *testing.T, path string, n int) {
	t.Helper()
	var found *Record
	if err := Read(path, uint64(n+1), func(r Record) error {
		if r.Type == TypeAuditUncovered {
			found = &r
			return ErrStop
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if found == nil {
		t.Fatal("no audit.uncovered record")
	}
	if rep, err := VerifyLog(path, nil); err != nil {
		t.Errorf("verify after the unclean-stop record: %v (%+v)", err, rep)
	}
}

// A crash leaves records after the last checkpoint: VerifyLog reports
// them, Open accepts them, records how many, and covers them.
func TestCrashTailAccepted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := OpenWithOptions(path, ckOpts())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 13 {
		if err := l.Record(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.crash()
	_, err = VerifyLog(dir, nil)
	wantUncovered(3, false)(t, err)

	l, err = OpenWithOptions(path, ckOpts())
	if err != nil {
		t.Fatalf("Open after a crash: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var rec Record
	Read(path, 14, func(r Record) error { rec = r; return ErrStop })
	if rec.Type != TypeAuditUncovered || rec.Details["records"] != "3" || rec.Details["first_seq"] != "11" || rec.Details["last_seq"] != "13" || rec.Details["last_checkpoint"] != "10" {
		t.Errorf("record 14: %+v", rec)
	}
	if rep, err := VerifyLog(dir, nil); err != nil || !rep.Final || rep.Records != 14 {
		t.Errorf("verify after restart: %+v, %v", rep, err)
	}
}

// A checkpoint torn by a crash is removed on Open and recorded.
func TestTornCheckpointRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := OpenWithOptions(path, ckOpts())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		l.Record(context.Background(), testEvent(i))
	}
	l.crash()
	editFile(t, filepath.Join(dir, "audit.checkpoints"), func(b []byte) []byte { return append(b, "h-test\n7\nabc"...) })
	_, err = VerifyLog(dir, nil)
	wantCheckpoint("incomplete final checkpoint")(t, err)
	l, err = OpenWithOptions(path, ckOpts())
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	var rec Record
	Read(path, 8, func(r Record) error { rec = r; return ErrStop })
	if rec.Type != TypeAuditUncovered || rec.Details["checkpoint_bytes_removed"] != "12" || rec.Details["records"] != "2" {
		t.Errorf("record 8: %+v", rec)
	}
	if _, err := VerifyLog(dir, nil); err != nil {
		t.Error(err)
	}
}

// A log written before checkpoints existed (no key, no checkpoint file)
// is taken as it is: its first checkpoint covers it.
func TestLegacyLogAdopted(t *testing.T) {
	dir := writeDir(t, 4, ckOpts())
	os.Remove(filepath.Join(dir, "audit.checkpoints"))
	os.Remove(filepath.Join(dir, KeyFileName))
	l, err := Open(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if rep, err := VerifyLog(dir, nil); err != nil || rep.Records != 4 {
		t.Errorf("%+v, %v", rep, err)
	}
	// But checkpoints without their key are refused.
	os.Remove(filepath.Join(dir, KeyFileName))
	if _, err := Open(filepath.Join(dir, "audit.log")); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("Open without the key: %v", err)
	}
}

func TestAppendOnlyFlag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := OpenWithOptions(path, ckOpts())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendOnlyFlag(); err != nil {
		l.Close()
		t.Skipf("append-only flag not available here: %v", err)
	}
	if err := os.Truncate(path, 0); err == nil {
		t.Error("truncate of the open log succeeded despite the append-only flag")
	}
	if err := os.WriteFile(path, []byte("x"), 0o600); err == nil {
		t.Error("rewrite of the open log succeeded")
	}
	l.Record(context.Background(), testEvent(1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	if appendOnlySet(f) {
		t.Error("flag still set after Close")
	}
}

func jsonUnmarshal(b []byte, v any) error {
	return json.Unmarshal(bytes.TrimSuffix(b, []byte("\n")), v)
}
