package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// stepClock returns a clock that advances 1ms per call, starting at t0+1ms.
// The log calls it with its lock held, so it needs no lock of its own.
func stepClock() func() time.Time {
	var n int
	return func() time.Time {
		n++
		return t0.Add(time.Duration(n) * time.Millisecond)
	}
}

func testEvent(i int) Event {
	e := Event{
		Type:      TypeInvocation,
		Actor:     fmt.Sprintf("spiffe://udfhost/user-%d", i),
		Pod:       "spiffe://udfhost/pod/worker-1",
		Resource:  fmt.Sprintf("function/default/f%d", i),
		Decision:  Allow,
		Reason:    "ok",
		RequestID: fmt.Sprintf("req-%04d", i),
		Details:   map[string]string{"rows": fmt.Sprint(i * 10), "layer": "base"},
	}
	if i%3 == 0 {
		e.Decision = Deny
		e.Details = nil
	}
	return e
}

func openTest(t testing.TB, path string) *Log {
	t.Helper()
	l, err := OpenWithOptions(path, Options{Now: stepClock()})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

// writeLog creates a log with n records and returns its path and records.
func writeLog(t *testing.T, n int) (string, []Record) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	var recs []Record
	for i := range n {
		r, err := l.Append(context.Background(), testEvent(i+1))
		if err != nil {
			t.Fatalf("append %d: %v", i+1, err)
		}
		recs = append(recs, r)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return path, recs
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(data, []byte("\n"))[:bytes.Count(data, []byte("\n"))]
}

func TestAppendVerify(t *testing.T) {
	for _, n := range []int{0, 1, 2, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			path, recs := writeLog(t, n)
			sum, err := Verify(path)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if sum.Records != n || sum.LastSeq != uint64(n) {
				t.Errorf("summary %+v, want %d records", sum, n)
			}
			if n == 0 {
				if sum != (Summary{}) {
					t.Errorf("empty summary %+v", sum)
				}
				return
			}
			last := recs[n-1]
			if sum.LastHash != last.Hash || !sum.FirstTime.Equal(recs[0].Time) || !sum.LastTime.Equal(last.Time) {
				t.Errorf("summary %+v does not match records (last %+v)", sum, last)
			}
			// Each line is exactly the JSON of the returned record, and
			// the returned records form the chain.
			lines := readLines(t, path)
			if len(lines) != n {
				t.Fatalf("%d lines, want %d", len(lines), n)
			}
			prev := GenesisHash
			for i, r := range recs {
				if r.Seq != uint64(i+1) || r.Prev != prev || len(r.Hash) != 64 {
					t.Errorf("record %d: seq %d prev %s hash %q (want prev %s)", i+1, r.Seq, r.Prev, r.Hash, prev)
				}
				prev = r.Hash
				want, err := json.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				if got := bytes.TrimSuffix(lines[i], []byte("\n")); !bytes.Equal(got, want) {
					t.Errorf("line %d:\n got %s\nwant %s", i+1, got, want)
				}
				var parsed Record
				if err := json.Unmarshal(lines[i], &parsed); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(parsed, r) {
					t.Errorf("line %d parses to %+v, Append returned %+v", i+1, parsed, r)
				}
			}
		})
	}
}

func TestLineFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	est := time.FixedZone("EST", -5*3600)
	l, err := OpenWithOptions(path, Options{Now: func() time.Time {
		return time.Date(2026, 11, 23, 5, 0, 0, 123456789, est)
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Append(ctx, Event{Type: TypeServerStarted, Decision: Allow}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, Event{
		Type: TypeAuthFailed, Actor: "a", Pod: "p", Resource: "r", Decision: Deny,
		Reason: "bad token", RequestID: "q", Details: map[string]string{"z": "1", "a": "2"},
	}); err != nil {
		t.Fatal(err)
	}
	l.Close()

	lines := readLines(t, path)
	body1 := `{"seq":1,"time":"2026-11-23T10:00:00.123456789Z","type":"server.started","decision":"allow","prev":"` + GenesisHash + `"}`
	sum1 := sha256.Sum256([]byte(body1))
	hash1 := hex.EncodeToString(sum1[:])
	want1 := body1[:len(body1)-1] + `,"hash":"` + hash1 + `"}` + "\n"
	if string(lines[0]) != want1 {
		t.Errorf("line 1:\n got %s\nwant %s", lines[0], want1)
	}
	body2 := `{"seq":2,"time":"2026-11-23T10:00:00.123456789Z","type":"auth.failed","actor":"a","pod":"p","resource":"r","decision":"deny","reason":"bad token","request_id":"q","details":{"a":"2","z":"1"},"prev":"` + hash1 + `"}`
	sum2 := sha256.Sum256([]byte(body2))
	want2 := body2[:len(body2)-1] + `,"hash":"` + hex.EncodeToString(sum2[:]) + `"}` + "\n"
	if string(lines[1]) != want2 {
		t.Errorf("line 2:\n got %s\nwant %s", lines[1], want2)
	}
}

// Strings that encoding/json rewrites must still round-trip so the record
// verifies.
func TestAwkwardStrings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	e := Event{
		Type:     TypeSandboxViolation,
		Decision: Error,
		Reason:   "bad \xff\xfe utf8 <script>&\u2028\u2029 \"quoted\"\n\t\x00",
		Details:  map[string]string{"k\xff": "v\xc3", "": ""},
	}
	r, err := l.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := Verify(path); err != nil {
		t.Fatalf("verify: %v", err)
	}
	var parsed Record
	if err := json.Unmarshal(readLines(t, path)[0], &parsed); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parsed, r) {
		t.Errorf("line parses to %+v, Append returned %+v", parsed, r)
	}
}

func TestReopenContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var all []Record
	for round := range 3 {
		l := openTest(t, path)
		for i := range 4 {
			r, err := l.Append(context.Background(), testEvent(round*4+i))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, r)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range all {
		if r.Seq != uint64(i+1) {
			t.Errorf("record %d has seq %d", i+1, r.Seq)
		}
		if i > 0 && r.Prev != all[i-1].Hash {
			t.Errorf("record %d prev %s, want %s", i+1, r.Prev, all[i-1].Hash)
		}
	}
	sum, err := Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 12 || sum.LastHash != all[11].Hash {
		t.Errorf("summary %+v", sum)
	}
}

func TestOpenCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Path() != path {
		t.Errorf("Path() = %q, want %q", l.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	r, err := l.Append(context.Background(), testEvent(1))
	if err != nil {
		t.Fatal(err)
	}
	if r.Time.Location() != time.UTC || time.Since(r.Time) > time.Minute || time.Since(r.Time) < 0 {
		t.Errorf("default clock gave %v", r.Time)
	}
}

// A second writer is refused, so it can neither interleave records nor
// "repair" a line the first is writing.
func TestOpenRefusesSecondWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	if _, err := Open(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: err = %v, want ErrInUse", err)
	}
	if err := l.Record(context.Background(), testEvent(1)); err != nil {
		t.Fatalf("first writer after the refused second: %v", err)
	}
	l.Close()
	l = openTest(t, path)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyMissingAndEmpty(t *testing.T) {
	dir := t.TempDir()
	if _, err := Verify(filepath.Join(dir, "missing.log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err %v, want not-exist", err)
	}
	empty := filepath.Join(dir, "empty.log")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sum, err := Verify(empty)
	if err != nil || sum.Records != 0 {
		t.Errorf("empty file: %+v, %v", sum, err)
	}
}

// lineStart returns the offset of line k (1-based) in data.
func lineStart(data []byte, k int) int {
	off := 0
	for range k - 1 {
		off += bytes.IndexByte(data[off:], '\n') + 1
	}
	return off
}

// offsetIn returns the offset of the first occurrence of s in line k,
// plus skip.
func offsetIn(t *testing.T, data []byte, k int, s string, skip int) int {
	t.Helper()
	start := lineStart(data, k)
	i := bytes.Index(data[start:], []byte(s))
	if i < 0 || bytes.IndexByte(data[start:start+i], '\n') >= 0 {
		t.Fatalf("%q not in line %d", s, k)
	}
	return start + i + skip
}

func TestTamperDetected(t *testing.T) {
	const n = 10
	path, _ := writeLog(t, n)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := func(data []byte) [][]byte { return bytes.SplitAfter(data, []byte("\n"))[:n] }
	join := func(ls [][]byte) []byte { return bytes.Join(ls, nil) }

	tests := []struct {
		name     string
		mutate   func(*testing.T, []byte) []byte
		wantLine int
		reason   string
	}{
		{"flip in actor value", func(t *testing.T, d []byte) []byte {
			d[offsetIn(t, d, 4, `"actor":"spiffe`, 10)] ^= 0x01
			return d
		}, 4, "hash mismatch"},
		{"flip in seq", func(t *testing.T, d []byte) []byte {
			d[offsetIn(t, d, 7, `"seq":7`, 6)] ^= 0x01 // 7 -> 6
			return d
		}, 7, "hash mismatch"},
		{"flip in time", func(t *testing.T, d []byte) []byte {
			d[offsetIn(t, d, 3, `"time":"2026`, 11)] ^= 0x01
			return d
		}, 3, "hash mismatch"},
		{"flip in details", func(t *testing.T, d []byte) []byte {
			d[offsetIn(t, d, 2, `"rows":"20"`, 8)] ^= 0x01
			return d
		}, 2, "hash mismatch"},
		{"flip in prev", func(t *testing.T, d []byte) []byte {
			d[offsetIn(t, d, 5, `"prev":"`, 20)] ^= 0x01
			return d
		}, 5, "hash mismatch"},
		{"flip in first prev", func(t *testing.T, d []byte) []byte {
			d[offsetIn(t, d, 1, `"prev":"`, 8)] ^= 0x01 // '0' -> '1'
			return d
		}, 1, "hash mismatch"},
		{"flip in hash to other hex digit", func(t *testing.T, d []byte) []byte {
			off := offsetIn(t, d, 6, `"hash":"`, 8)
			for d[off] > '9' { // find a decimal digit so the flip stays hex
				off++
			}
			d[off] ^= 0x01
			return d
		}, 6, "hash mismatch"},
		{"flip in hash to non-hex", func(t *testing.T, d []byte) []byte {
			off := offsetIn(t, d, 6, `"hash":"`, 8)
			d[off] = 'g'
			return d
		}, 6, "malformed line"},
		{"flip in newline", func(t *testing.T, d []byte) []byte {
			d[lineStart(d, 9)-1] = ' ' // joins lines 8 and 9
			return d
		}, 8, "hash mismatch"},
		{"flip in last newline", func(t *testing.T, d []byte) []byte {
			d[len(d)-1] = ' '
			return d
		}, n, "no trailing newline and is not the start of record 10: damaged"},
		{"uppercase hash", func(t *testing.T, d []byte) []byte {
			start := offsetIn(t, d, 3, `"hash":"`, 8)
			copy(d[start:], bytes.ToUpper(d[start:start+64]))
			return d
		}, 3, "malformed line"},
		{"delete line", func(t *testing.T, d []byte) []byte {
			ls := lines(d)
			return join(append(ls[:4:4], ls[5:]...))
		}, 5, "seq is 6, want 5"},
		{"delete first line", func(t *testing.T, d []byte) []byte {
			return join(lines(d)[1:])
		}, 1, "seq is 2, want 1"},
		{"swap lines", func(t *testing.T, d []byte) []byte {
			ls := lines(d)
			ls[2], ls[6] = ls[6], ls[2]
			return join(ls)
		}, 3, "seq is 7, want 3"},
		{"duplicate line", func(t *testing.T, d []byte) []byte {
			ls := lines(d)
			return join(append(ls[:5:5], ls[4:]...))
		}, 6, "seq is 5, want 6"},
		{"blank line", func(t *testing.T, d []byte) []byte {
			ls := lines(d)
			return join(append(ls[:2:2], append([][]byte{[]byte("\n")}, ls[2:]...)...))
		}, 3, "malformed line"},
		{"truncate last line", func(t *testing.T, d []byte) []byte {
			return d[:len(d)-30]
		}, n, "no trailing newline: an incomplete record"},
		{"truncate last newline", func(t *testing.T, d []byte) []byte {
			return d[:len(d)-1]
		}, n, "no trailing newline: an incomplete record"},
		{"append junk after last newline", func(t *testing.T, d []byte) []byte {
			return append(d, "junk"...)
		}, n + 1, "not the start of record 11: damaged"},
		{"truncate last line keeping newline", func(t *testing.T, d []byte) []byte {
			return append(d[:len(d)-30], '\n')
		}, n, "malformed line"},
		{"rehashed record with broken prev", func(t *testing.T, d []byte) []byte {
			// Change a value and recompute that record's own hash: the
			// next record's prev no longer matches.
			ls := lines(d)
			body, _, ok := unseal(bytes.TrimSuffix(ls[3], []byte("\n")))
			if !ok {
				t.Fatal("unseal")
			}
			body = bytes.Replace(body, []byte(`"reason":"ok"`), []byte(`"reason":"OK"`), 1)
			ls[3], _ = seal(body)
			return join(ls)
		}, 5, "prev is"},
		{"rehashed record with wrong seq", func(t *testing.T, d []byte) []byte {
			ls := lines(d)
			body, _, _ := unseal(bytes.TrimSuffix(ls[3], []byte("\n")))
			body = bytes.Replace(body, []byte(`"seq":4`), []byte(`"seq":40`), 1)
			ls[3], _ = seal(body)
			return join(ls)
		}, 4, "seq is 40, want 4"},
		{"rehashed non-canonical record", func(t *testing.T, d []byte) []byte {
			ls := lines(d)
			body, _, _ := unseal(bytes.TrimSuffix(ls[1], []byte("\n")))
			body = bytes.Replace(body, []byte(`"seq":2,`), []byte(`"seq": 2,`), 1)
			ls[1], _ = seal(body)
			return join(ls)
		}, 2, "canonical"},
		{"rehashed record with unknown field", func(t *testing.T, d []byte) []byte {
			ls := lines(d)
			body, _, _ := unseal(bytes.TrimSuffix(ls[1], []byte("\n")))
			body = bytes.Replace(body, []byte(`"seq":2,`), []byte(`"seq":2,"x":1,`), 1)
			ls[1], _ = seal(body)
			return join(ls)
		}, 2, "canonical"},
		{"rehashed record with non-UTC time", func(t *testing.T, d []byte) []byte {
			ls := lines(d)
			body, _, _ := unseal(bytes.TrimSuffix(ls[1], []byte("\n")))
			i := bytes.Index(body, []byte(`Z"`))
			body = append(body[:i:i], append([]byte(`+01:00`), body[i+1:]...)...)
			ls[1], _ = seal(body)
			return join(ls)
		}, 2, "not UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.mutate(t, bytes.Clone(orig))
			if bytes.Equal(data, orig) {
				t.Fatal("mutation changed nothing")
			}
			bad := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(bad, data, 0o600); err != nil {
				t.Fatal(err)
			}

			sum, err := Verify(bad)
			checkVerifyError(t, "Verify", err, tt.wantLine, tt.reason)
			if sum.Records != tt.wantLine-1 {
				t.Errorf("Verify summary has %d records, want the %d before the bad one", sum.Records, tt.wantLine-1)
			}

			// A final line that is the start of the next record is
			// indistinguishable from a write torn at the end (and a
			// removal of whole records from the end goes undetected
			// anyway, see the package doc), so Open removes it and
			// records the repair instead of refusing.
			l, err := Open(bad)
			if strings.Contains(tt.reason, "an incomplete record") {
				if err != nil {
					t.Fatalf("Open did not repair: %v", err)
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				checkRepaired(t, bad, data, tt.wantLine)
				return
			}
			if err == nil {
				l.Close()
				t.Fatal("Open accepted a tampered log")
			}
			checkVerifyError(t, "Open", err, tt.wantLine, tt.reason)
			after, _ := os.ReadFile(bad)
			if !bytes.Equal(after, data) {
				t.Error("Open modified the tampered file")
			}
		})
	}
}

func checkVerifyError(t *testing.T, op string, err error, wantLine int, reason string) {
	t.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("%s: err = %v, want *VerifyError", op, err)
	}
	if ve.Line != wantLine || ve.Seq != uint64(wantLine) {
		t.Errorf("%s: error names line %d seq %d, want %d: %v", op, ve.Line, ve.Seq, wantLine, err)
	}
	if !strings.Contains(ve.Reason, reason) {
		t.Errorf("%s: reason %q does not contain %q", op, ve.Reason, reason)
	}
	prefix := fmt.Sprintf("record %d (line %d): ", wantLine, wantLine)
	if !strings.HasPrefix(ve.Error(), prefix) {
		t.Errorf("%s: message %q does not start with %q", op, ve.Error(), prefix)
	}
}

// Changing any single byte of the file, in any way, must fail verification
// at the record containing that byte (a newline belongs to its record).
func TestEveryByteChangeDetected(t *testing.T) {
	path, _ := writeLog(t, 4)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := 1
	for off := range orig {
		for _, mask := range []byte{0x01, 0x02, 0x10, 0x20, 0x40, 0x80} {
			data := bytes.Clone(orig)
			data[off] ^= mask
			_, err := verifyStream(bytes.NewReader(data))
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("byte %d ^ %#x: err = %v, want *VerifyError", off, mask, err)
			}
			if ve.Line != line {
				t.Fatalf("byte %d ^ %#x (line %d): error names line %d: %v", off, mask, line, ve.Line, err)
			}
		}
		if orig[off] == '\n' {
			line++
		}
	}
}

// checkRepaired checks that the log at path is data up to the start of
// line torn, followed by one audit.repaired record describing the bytes
// removed, and that it verifies.
func checkRepaired(t *testing.T, path string, data []byte, torn int) {
	t.Helper()
	off := lineStart(data, torn)
	removed := data[off:]
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(after, data[:off]) {
		t.Fatal("repair changed the complete records before the torn line")
	}
	sum, err := Verify(path)
	if err != nil {
		t.Fatalf("verify after repair: %v", err)
	}
	if sum.Records != torn || sum.Size != int64(len(after)) {
		t.Errorf("after repair: %+v, want %d records in %d bytes", sum, torn, len(after))
	}
	var r Record
	if err := json.Unmarshal(after[off:], &r); err != nil {
		t.Fatalf("repair record: %v", err)
	}
	h := sha256.Sum256(removed)
	want := map[string]string{
		"offset":        fmt.Sprint(off),
		"line":          fmt.Sprint(torn),
		"bytes_removed": fmt.Sprint(len(removed)),
		"sha256":        hex.EncodeToString(h[:]),
	}
	if r.Type != TypeAuditRepaired || r.Seq != uint64(torn) || !reflect.DeepEqual(r.Details, want) {
		t.Errorf("repair record %+v, want type %s seq %d details %v", r, TypeAuditRepaired, torn, want)
	}
}

// An incomplete final line, as a write torn by a crash or a full disk
// leaves it, is removed on Open and the repair recorded; the chain goes on.
func TestOpenRepairsTornFinalLine(t *testing.T) {
	const n = 3
	path, _ := writeLog(t, n)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A fourth and fifth record as the log would have written them.
	more := filepath.Join(t.TempDir(), "more.log")
	if err := os.WriteFile(more, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := OpenWithOptions(more, Options{Now: func() time.Time { return t0.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := l.Record(context.Background(), testEvent(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	full, _ := os.ReadFile(more)
	line4 := full[len(orig):lineStart(full, 5)]
	line5 := full[lineStart(full, 5):]

	tests := []struct {
		name string
		tail []byte // appended to the 3 good records
		torn int    // line that is removed
	}{
		{"one byte", line4[:1], 4},
		{"inside the seq", line4[:len(`{"seq":`)+0], 4},
		{"inside the body", line4[:len(line4)/2], 4},
		{"inside prev", line4[:bytes.Index(line4, []byte(`"prev":"`))+20], 4},
		{"inside the hash key", line4[:len(line4)-1-hashSuffixLen+4], 4},
		{"inside the hash", line4[:len(line4)-20], 4},
		{"all but the closing brace", line4[:len(line4)-2], 4},
		{"all but the newline", line4[:len(line4)-1], 4},
		{"a batch torn in its second record", append(bytes.Clone(line4), line5[:100]...), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := append(bytes.Clone(orig), tt.tail...)
			p := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Verify(p)
			checkVerifyError(t, "Verify", err, tt.torn, "an incomplete record")
			if err := openTest(t, p).Close(); err != nil {
				t.Fatal(err)
			}
			checkRepaired(t, p, data, tt.torn)
			// Reopened, the log has nothing to repair and goes on.
			l := openTest(t, p)
			r, err := l.Append(context.Background(), testEvent(99))
			if err != nil || r.Seq != uint64(tt.torn)+1 {
				t.Fatalf("append after repair: %+v, %v", r, err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if sum, err := Verify(p); err != nil || sum.Records != tt.torn+1 {
				t.Errorf("verify: %+v, %v", sum, err)
			}
		})
	}
}

// Only an incomplete final line is ever removed: damage anywhere else, or a
// final line that is not the start of the next record, is refused and the
// file left as it is.
func TestOpenRefusesDamageThatIsNotATornWrite(t *testing.T) {
	const n = 4
	path, _ := writeLog(t, n)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := orig[lineStart(orig, n):]
	tests := []struct {
		name     string
		data     []byte
		wantLine int
		reason   string
	}{
		{"corrupt middle record and a torn tail", func() []byte {
			d := append(bytes.Clone(orig), `{"seq":5,"ti`...)
			d[offsetIn(t, d, 2, `"actor":"spiffe`, 10)] ^= 0x01
			return d
		}(), 2, "hash mismatch"},
		{"tail with the wrong seq", append(bytes.Clone(orig), `{"seq":7,"time":"2026-`...), n + 1, "damaged"},
		{"tail that is not a record", append(bytes.Clone(orig), "\x00\x00\x00\x00"...), n + 1, "damaged"},
		{"tail that repeats the last record", append(bytes.Clone(orig), last[:len(last)-1]...), n + 1, "damaged"},
		{"tail chained onto another record", func() []byte {
			// Record 4 again, renumbered as 5: its prev is not 4's hash.
			l := bytes.Replace(last[:len(last)-1], []byte(`"seq":4`), []byte(`"seq":5`), 1)
			return append(bytes.Clone(orig), l[:len(l)-10]...)
		}(), n + 1, "damaged"},
		{"complete tail whose hash does not match", func() []byte {
			l := bytes.Replace(last[:len(last)-1], []byte(`"seq":4`), []byte(`"seq":5`), 1)
			l = bytes.Replace(l, []byte(`"prev":"`+string(orig[lineStart(orig, n)-hashSuffixLen+len(hashPrefix)-1:lineStart(orig, n)-3])+`"`), []byte(`"prev":"`+lastHash(t, orig)+`"`), 1)
			return append(bytes.Clone(orig), l...)
		}(), n + 1, "damaged"},
		{"bytes after a complete tail", append(bytes.Clone(orig), append(bytes.Clone(last[:len(last)-1]), ' ')...), n + 1, "damaged"},
		{"final line ending in a newline that does not verify", append(bytes.Clone(orig), `{"seq":5,"time":"2026-`+"\n"...), n + 1, "malformed line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Verify(p)
			checkVerifyError(t, "Verify", err, tt.wantLine, tt.reason)
			l, err := Open(p)
			if err == nil {
				l.Close()
				t.Fatal("Open accepted a damaged log")
			}
			checkVerifyError(t, "Open", err, tt.wantLine, tt.reason)
			if after, _ := os.ReadFile(p); !bytes.Equal(after, tt.data) {
				t.Error("Open modified the damaged file")
			}
		})
	}
}

// lastHash returns the hash of the last record in data.
func lastHash(t *testing.T, data []byte) string {
	t.Helper()
	var r Record
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
		t.Fatal(err)
	}
	return r.Hash
}

func TestConcurrentAppend(t *testing.T) {
	const goroutines, each = 16, 50
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	var (
		mu   sync.Mutex
		recs []Record
		wg   sync.WaitGroup
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r, err := l.Append(context.Background(), testEvent(g*each+i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				recs = append(recs, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	syncs := l.syncCount()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records in %d write+fsync batches", len(recs), syncs)

	sort.Slice(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
	if len(recs) != goroutines*each {
		t.Fatalf("%d records, want %d", len(recs), goroutines*each)
	}
	lines := readLines(t, path)
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("position %d has seq %d: seqs not unique and consecutive", i+1, r.Seq)
		}
		if !strings.HasSuffix(string(lines[i]), `"hash":"`+r.Hash+"\"}\n") {
			t.Errorf("line %d does not carry the hash Append returned for seq %d", i+1, r.Seq)
		}
	}
	sum, err := Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != goroutines*each {
		t.Errorf("verified %d records", sum.Records)
	}
}

func (l *Log) syncCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.syncs
}

// blockFirstWrite makes the first leader wait in its write until release is
// closed, and records the size of every batch written.
func blockFirstWrite(l *Log) (entered chan struct{}, release chan struct{}, sizes *[]int) {
	entered, release = make(chan struct{}), make(chan struct{})
	sizes = new([]int)
	first := true
	l.hookBeforeWrite = func(n int) { // called by one leader at a time
		*sizes = append(*sizes, n)
		if first {
			first = false
			close(entered)
			<-release
		}
	}
	return entered, release, sizes
}

// waitQueued waits until n records are queued behind the current leader.
func waitQueued(t *testing.T, l *Log, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		q := len(l.queue)
		l.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommit(t *testing.T) {
	const waiters = 10
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	entered, release, sizes := blockFirstWrite(l)

	errs := make(chan error, waiters+1)
	go func() { errs <- l.Record(context.Background(), testEvent(0)) }()
	<-entered
	for i := range waiters {
		go func() { errs <- l.Record(context.Background(), testEvent(i+1)) }()
	}
	waitQueued(t, l, waiters)
	close(release)
	for range waiters + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if want := []int{1, waiters}; !reflect.DeepEqual(*sizes, want) {
		t.Errorf("batch sizes %v, want %v", *sizes, want)
	}
	if n := l.syncCount(); n != 2 {
		t.Errorf("%d syncs, want 2", n)
	}
	l.Close()
	if sum, err := Verify(path); err != nil || sum.Records != waiters+1 {
		t.Errorf("verify: %+v, %v", sum, err)
	}
}

// failingOpeners returns ways to get a file whose writes really fail, to
// put in place of a log's file, and whether the log can roll the failed
// write back (intact) on that file.
func failingOpeners() map[string]struct {
	open   func(t *testing.T, path string) *os.File
	intact bool
} {
	type opener = struct {
		open   func(t *testing.T, path string) *os.File
		intact bool
	}
	return map[string]opener{
		// The log file itself, opened read-only: write fails with EBADF
		// and writes nothing.
		"read-only fd": {func(t *testing.T, path string) *os.File {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}, true},
		// A pipe: write succeeds, fsync fails with EINVAL, and so does
		// the truncate that would remove what was written.
		"fsync fails": {func(t *testing.T, _ string) *os.File {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return w
		}, false},
		// A device that is always full: write fails with ENOSPC. (A
		// real full filesystem, with short writes: TestDiskFull.)
		"ENOSPC": {func(t *testing.T, _ string) *os.File {
			f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
			if err != nil {
				t.Skipf("no /dev/full: %v", err)
			}
			return f
		}, true},
	}
}

// A failed write fails its Append (fail closed). If it could be rolled
// back the log is intact and takes the next record once writes work;
// if not, it refuses every record, and Close says so.
func TestFailClosed(t *testing.T) {
	for name, o := range failingOpeners() {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			l := openTest(t, path)
			ctx := context.Background()
			for i := range 3 {
				if _, err := l.Append(ctx, testEvent(i)); err != nil {
					t.Fatal(err)
				}
			}
			good := l.f
			l.f = o.open(t, path)

			_, err := l.Append(ctx, testEvent(3))
			if !errors.Is(err, ErrBroken) {
				t.Fatalf("append on failing file: err = %v, want ErrBroken", err)
			}
			if says := strings.Contains(err.Error(), "the log is intact and takes the next record"); says != o.intact {
				t.Errorf("error %q: says intact %v, want %v", err, says, o.intact)
			}
			l.f.Close()
			l.f = good
			for i := range 3 {
				r, err := l.Append(ctx, testEvent(4+i))
				if o.intact {
					if err != nil || r.Seq != uint64(4+i) {
						t.Fatalf("append %d once writes work: %+v, %v; want seq %d", i, r, err, 4+i)
					}
					continue
				}
				if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), "stop the server and start it again") {
					t.Fatalf("append %d after a failure that was not rolled back: err = %v, want ErrBroken saying what to do", i, err)
				}
			}
			err = l.Close()
			if o.intact && err != nil {
				t.Fatalf("close of an intact log after a failed write: %v", err)
			}
			if !o.intact && !errors.Is(err, ErrBroken) {
				t.Fatalf("close of a log that is not intact: err = %v, want ErrBroken", err)
			}

			want := 3
			if o.intact {
				want = 6
			}
			if sum, err := Verify(path); err != nil || sum.Records != want {
				t.Fatalf("verify after failure: %+v, %v; want %d records", sum, err, want)
			}
			l = openTest(t, path)
			r, err := l.Append(ctx, testEvent(9))
			if err != nil || r.Seq != uint64(want+1) {
				t.Fatalf("append after reopen: %+v, %v", r, err)
			}
			l.Close()
		})
	}
}

// When a batch fails, every record in it and every record queued behind it
// fails; the next record chains onto the last durable one.
func TestFailClosedBatch(t *testing.T) {
	const waiters = 5
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	first, err := l.Append(context.Background(), testEvent(0))
	if err != nil {
		t.Fatal(err)
	}
	good := l.f
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	entered, release := make(chan struct{}), make(chan struct{})
	var sizes []int
	l.hookBeforeWrite = func(n int) { // called by one leader at a time
		sizes = append(sizes, n)
		if len(sizes) == 1 {
			close(entered)
			<-release
			l.f = ro // this write fails
		} else {
			l.f = good
		}
	}

	errs := make(chan error, waiters+1)
	go func() { errs <- l.Record(context.Background(), testEvent(1)) }()
	<-entered
	for i := range waiters {
		go func() { errs <- l.Record(context.Background(), testEvent(i+2)) }()
	}
	waitQueued(t, l, waiters)
	close(release)
	for range waiters + 1 {
		if err := <-errs; !errors.Is(err, ErrBroken) {
			t.Errorf("err = %v, want ErrBroken", err)
		}
	}
	if !reflect.DeepEqual(sizes, []int{1}) {
		t.Errorf("batches written %v, want only the failing [1]", sizes)
	}
	r, err := l.Append(context.Background(), testEvent(9))
	if err != nil || r.Seq != 2 || r.Prev != first.Hash {
		t.Errorf("later append: %+v, %v; want seq 2 after %s", r, err, first.Hash)
	}
	if err := l.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if sum, err := Verify(path); err != nil || sum.Records != 2 {
		t.Errorf("verify: %+v, %v", sum, err)
	}
}

func TestCloseWaitsForWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	entered, release, _ := blockFirstWrite(l)
	appendErr := make(chan error, 1)
	go func() { appendErr <- l.Record(context.Background(), testEvent(1)) }()
	<-entered
	closeErr := make(chan error, 1)
	go func() { closeErr <- l.Close() }()
	// Close must wait for the write in progress; Appends queued after it
	// are refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Record(context.Background(), testEvent(2)); !errors.Is(err, ErrClosed) {
		t.Errorf("append during close: err = %v, want ErrClosed", err)
	}
	select {
	case err := <-closeErr:
		t.Fatalf("Close returned (%v) while a write was in progress", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-appendErr; err != nil {
		t.Errorf("in-flight append: %v", err)
	}
	if err := <-closeErr; err != nil {
		t.Errorf("close: %v", err)
	}
	if sum, err := Verify(path); err != nil || sum.Records != 1 {
		t.Errorf("verify: %+v, %v", sum, err)
	}
}

func TestAppendRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	ctx := context.Background()

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(canceled, testEvent(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: err = %v", err)
	}
	if _, err := l.Append(ctx, Event{Decision: Allow}); err == nil {
		t.Error("event without type accepted")
	}
	huge := testEvent(1)
	huge.Reason = strings.Repeat("x", maxLineLen)
	if _, err := l.Append(ctx, huge); err == nil {
		t.Error("oversized record accepted")
	}
	// None of those consumed a seq or broke the log.
	r, err := l.Append(ctx, testEvent(1))
	if err != nil || r.Seq != 1 || r.Prev != GenesisHash {
		t.Fatalf("append after rejections: %+v, %v", r, err)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, testEvent(2)); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: err = %v, want ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second close: err = %v, want ErrClosed", err)
	}
	if sum, err := Verify(path); err != nil || sum.Records != 1 {
		t.Errorf("verify: %+v, %v", sum, err)
	}
}

func TestVerifyRejectsLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), maxLineLen+10), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Verify(path)
	checkVerifyError(t, "Verify", err, 1, "longer than")
}

// Other packages depend on this interface.
var _ interface {
	Record(ctx context.Context, e Event) error
} = (*Log)(nil)

func benchmarkAppend(b *testing.B, parallel bool) {
	l := openTest(b, filepath.Join(b.TempDir(), "audit.log"))
	defer l.Close()
	e := testEvent(1)
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := l.Record(context.Background(), e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for b.Loop() {
			if err := l.Record(context.Background(), e); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	l.mu.Lock()
	b.ReportMetric(float64(l.seq)/float64(max(l.syncs, 1)), "records/fsync")
	l.mu.Unlock()
}

// BenchmarkAppendParallel shows group commit: with many concurrent
// appenders, records/fsync is well above 1 and ns/op well below one fsync.
func BenchmarkAppendParallel(b *testing.B) { benchmarkAppend(b, true) }

// BenchmarkAppendSerial is the baseline: one record per write+fsync.
func BenchmarkAppendSerial(b *testing.B) { benchmarkAppend(b, false) }
