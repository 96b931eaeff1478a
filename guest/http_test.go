//go:build !wasip1

package guest

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fields splits a request record into its fields, the headers flattened.
func fields(t *testing.T, rec []byte) []string {
	t.Helper()
	var out []string
	next := func() string {
		if len(rec) < 4 {
			t.Fatalf("record truncated: %q", rec)
		}
		n := int(le32(rec, 0))
		s := string(rec[4 : 4+n])
		rec = rec[4+n:]
		return s
	}
	for range 4 {
		out = append(out, next())
	}
	nh := int(le32(rec, 0))
	rec = rec[4:]
	for range 2 * nh {
		out = append(out, next())
	}
	out = append(out, next())
	if len(rec) != 0 {
		t.Fatalf("%d bytes after the body", len(rec))
	}
	return out
}

func headerBlock(h ...string) []byte {
	b := appendU32(nil, uint32(len(h)/2))
	for _, s := range h {
		b = appendField(b, s)
	}
	return b
}

func TestHTTPSendsTheRecordAndReadsTheResponse(t *testing.T) {
	defer func() { testHost = fakeHost{} }()
	var got []string
	big := bytes.Repeat([]byte("0123456789"), 5000) // larger than the first read
	for _, body := range [][]byte{[]byte("small"), big, {}} {
		testHost.answer = func(rec []byte) (int, []byte, []byte, int64, string) {
			got = fields(t, rec)
			return 201, headerBlock("Content-Type", "text/plain", "X-A", "1"), body, 0, ""
		}
		status, resp, err := HTTP(Connection(0), "POST", "/k/v", []byte("payload"))
		if err != nil || status != 201 || !bytes.Equal(resp, body) {
			t.Fatalf("HTTP: %d, %d bytes, %v", status, len(resp), err)
		}
		if want := []string{"#0", "POST", "/k/v", "", "payload"}; !reflect.DeepEqual(got, want) {
			t.Errorf("record %q, want %q", got, want)
		}
	}
	r, err := Do(&Request{Conn: "lookup", Method: "GET", Path: "/x", Addr: "10.0.0.1:80", Header: [][2]string{{"Accept", "text/plain"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"lookup", "GET", "/x", "10.0.0.1:80", "Accept", "text/plain", ""}; !reflect.DeepEqual(got, want) {
		t.Errorf("record %q, want %q", got, want)
	}
	if r.Get("content-type") != "text/plain" || r.Get("X-A") != "1" || r.Get("Nope") != "" {
		t.Errorf("headers %q", r.Header)
	}
}

func TestHTTPErrorsCarryTheHostsCodeAndMessage(t *testing.T) {
	defer func() { testHost = fakeHost{} }()
	testHost.answer = func([]byte) (int, []byte, []byte, int64, string) {
		return 0, nil, nil, CodeDenied, "this function has no connections"
	}
	_, _, err := HTTP(Connection(1), "GET", "/", nil)
	var he *HTTPError
	if !errors.As(err, &he) || he.Code != CodeDenied || he.Error() != "this function has no connections" {
		t.Fatalf("err %v", err)
	}
	testHost.answer = func([]byte) (int, []byte, []byte, int64, string) {
		return 0, nil, nil, CodeFailed, strings.Repeat("x", 600)
	}
	if _, _, err := HTTP("c", "GET", "/", nil); err == nil || len(err.Error()) != 512 {
		t.Errorf("a long message is cut to the SDK's buffer: %d bytes", len(err.Error()))
	}
	testHost.answer = func([]byte) (int, []byte, []byte, int64, string) {
		return 200, []byte{9, 0, 0, 0}, nil, 0, "" // nine headers announced, none there
	}
	if _, err := Do(&Request{Conn: "c", Method: "GET", Path: "/"}); err == nil {
		t.Error("a malformed header block accepted")
	}
}

func TestConnectionNamesByPosition(t *testing.T) {
	if Connection(0) != "#0" || Connection(12) != "#12" {
		t.Errorf("%q %q", Connection(0), Connection(12))
	}
}
