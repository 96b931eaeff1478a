package audit

import (
	"bytes"
	"os"
	"testing"
)

// The fast path takes the records a Log writes (else verifying is slow),
// and leaves records with escapes to the full check, which accepts them.
func TestFastPathTakesLogRecords(t *testing.T) {
	path, _ := writeLog(t, 30)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := newChain()
	for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if !c.fastNext(line) {
			t.Fatalf("fast path refused record %d: %s", i+1, line)
		}
	}
	// Escaped strings: the full check's.
	l := openTest(t, t.TempDir()+"/audit.log")
	e := testEvent(1)
	e.Reason = "a <b> & \"c\"\n"
	r, err := l.Append(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	line, _, _ := encode(r)
	c = newChain()
	if c.fastNext(line[:len(line)-1]) {
		t.Error("fast path took a record with escapes")
	}
	if ve := c.next(1, line[:len(line)-1]); ve != nil {
		t.Errorf("full check: %v", ve)
	}
}

// Append's split encoding gives exactly json.Marshal's bytes.
func TestSealPartsIsMarshal(t *testing.T) {
	awkward := Event{Type: "x<y>", Actor: "a&b", Decision: Deny, Reason: "bad \xff\xfe <script>&\u2028\u2029 \"q\"\n\t\x00",
		Details: map[string]string{"k\xff": "v\xc3", "": "", "z": "1"}}
	for i, e := range []Event{testEvent(1), testEvent(3), awkward, {Type: TypeServerStarted, Decision: Allow}} {
		r := newRecord(uint64(i+1), t0.Add(123456789), GenesisHash, "h-\xffx", e)
		want, _, err := encode(r)
		if err != nil {
			t.Fatal(err)
		}
		mid, err := middleJSON(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sealParts(&r, mid)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("event %d:\n got %s\nwant %s (%v)", i, got, want, err)
		}
	}
}
