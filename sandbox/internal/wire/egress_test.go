package wire

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestEgressRequestRoundTrips(t *testing.T) {
	for _, req := range []EgressRequest{
		{Conn: "lookup", Method: "GET", Path: "/k"},
		{Conn: "#0", Method: "POST", Path: "/a/b?c=d", Addr: "10.0.0.7:8443",
			Header: [][2]string{{"Content-Type", "text/plain"}, {"X-Trace", ""}}, Body: []byte("payload\x00\n")},
	} {
		rec := AppendEgressRequest(nil, &req)
		frame := append(binary.LittleEndian.AppendUint64(nil, 42), rec...)
		call, got, err := ParseEgress(frame)
		if err != nil || call != 42 || !bytes.Equal(got, rec) {
			t.Fatalf("ParseEgress: %d %q %v", call, got, err)
		}
		dec, err := DecodeEgressRequest(got, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(req.Body) == 0 {
			req.Body = []byte{}
		}
		if !reflect.DeepEqual(dec, req) {
			t.Errorf("got %+v, want %+v", dec, req)
		}
	}
}

func TestEgressResponseRoundTrips(t *testing.T) {
	resp := EgressResponse{Status: 404, Header: [][2]string{{"Content-Length", "9"}}, Body: []byte("not found")}
	got, err := DecodeEgressResponse(bytes.Join(EncodeEgressResponse(&resp), nil))
	if err != nil || !reflect.DeepEqual(got, resp) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, status := range []int{0, 99, 1000} {
		bad := EgressResponse{Status: status}
		if _, err := DecodeEgressResponse(bytes.Join(EncodeEgressResponse(&bad), nil)); err == nil {
			t.Errorf("status %d accepted", status)
		}
	}
}

// field builds a raw length-prefixed field, whatever its length claims.
func field(n uint32, b string) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, n), b...)
}

// TestEgressRequestRefusesHostileRecords: every malformed record is
// refused with an error naming the problem, never a panic, and nothing is
// allocated in proportion to a length the record claims.
func TestEgressRequestRefusesHostileRecords(t *testing.T) {
	good := AppendEgressRequest(nil, &EgressRequest{Conn: "c", Method: "GET", Path: "/", Header: [][2]string{{"A", "b"}}, Body: []byte("xy")})
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	head := cat(field(1, "c"), field(3, "GET"), field(1, "/"), field(0, ""))
	cases := []struct {
		name, want string
		rec        []byte
	}{
		{"empty", "truncated", nil},
		{"huge conn length", "connection name of 4294967295 bytes exceeds", field(0xffffffff, "c")},
		{"conn past the end", "truncated: connection name of 100 bytes", field(100, "c")},
		{"no conn", "no connection named", cat(field(0, ""), field(3, "GET"), field(1, "/"), field(0, ""), u32(0), u32(0))},
		{"lower-case method", `method "get"`, cat(field(1, "c"), field(3, "get"), field(1, "/"), field(0, ""), u32(0), u32(0))},
		{"CRLF in path", "path holds control character 0xd", cat(field(1, "c"), field(3, "GET"), field(12, "/\r\nHost: x\r\n"), field(0, ""), u32(0), u32(0))},
		{"too many headers", "headers exceed the limit", cat(head, u32(1<<30))},
		{"headers past the end", "truncated: 20 headers announced", cat(head, u32(20), field(1, "A"))},
		{"header name not a token", `header name "Bad Name"`, cat(head, u32(1), field(8, "Bad Name"), field(1, "v"), u32(0))},
		{"LF in header value", "header value holds control character 0xa", cat(head, u32(1), field(1, "A"), field(3, "a\nb"), u32(0))},
		{"oversized header value", "header value of 9000 bytes exceeds", cat(head, u32(1), field(1, "A"), field(9000, ""))},
		{"body over the limit", "body of 2000 bytes exceeds the limit of 1024", cat(head, u32(0), field(2000, ""))},
		{"body past the end", "truncated: body of 10 bytes, 2 left", cat(head, u32(0), field(10, "ab"))},
		{"trailing bytes", "1 bytes after the last field", append(good, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEgressRequest(tc.rec, 1024)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Every truncation of a good record is refused.
	for n := 0; n < len(good); n++ {
		if _, err := DecodeEgressRequest(good[:n], 1024); err == nil {
			t.Errorf("record cut at %d of %d bytes accepted", n, len(good))
		}
	}
	if _, _, err := ParseEgress(make([]byte, 7)); err == nil {
		t.Error("egress frame without a call id accepted")
	}
	// The host's limit wins over the protocol's, and the protocol's over a
	// larger one.
	big := AppendEgressRequest(nil, &EgressRequest{Conn: "c", Method: "PUT", Path: "/", Body: make([]byte, 100)})
	if _, err := DecodeEgressRequest(big, 99); err == nil {
		t.Error("a body over the host's limit accepted")
	}
	if _, err := DecodeEgressRequest(big, 1<<40); err != nil {
		t.Errorf("a limit above MaxEgressBody: %v", err)
	}
}

// TestHostileHeaderCountAllocatesNothing: a record announcing many headers
// it does not hold allocates nothing for them.
func TestHostileHeaderCountAllocatesNothing(t *testing.T) {
	rec := bytes.Join([][]byte{field(1, "c"), field(3, "GET"), field(1, "/"), field(0, ""), binary.LittleEndian.AppendUint32(nil, MaxEgressHeaders)}, nil)
	rec = append(rec, make([]byte, 8*MaxEgressHeaders-1)...) // one byte short of the smallest headers
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := DecodeEgressRequest(rec, 1024); err == nil {
			t.Fatal("accepted")
		}
	}
	runtime.ReadMemStats(&after)
	// The header slice alone would be 32 × 32 bytes a run.
	if perRun := (after.TotalAlloc - before.TotalAlloc) / 100; perRun >= 512 {
		t.Errorf("%d bytes allocated a run for a record announcing %d absent headers", perRun, MaxEgressHeaders)
	}
}

func FuzzDecodeEgressRequest(f *testing.F) {
	f.Add(AppendEgressRequest(nil, &EgressRequest{Conn: "c", Method: "GET", Path: "/x", Header: [][2]string{{"A", "b"}}, Body: []byte("b")}))
	f.Fuzz(func(t *testing.T, rec []byte) {
		req, err := DecodeEgressRequest(rec, 1<<10)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same record.
		if again := AppendEgressRequest(nil, &req); !bytes.Equal(again, rec) {
			t.Errorf("re-encoded %q as %q", rec, again)
		}
	})
}

func TestReadFrameLimitsHoldsEgressFramesToTheirLimit(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Send(KindResult, StatusOK, 1, make([]byte, 100))
	w.Send(KindEgress, StatusOK, 2, make([]byte, 100))
	var hdr [HeaderSize]byte
	if fr, _, err := ReadFrameLimits(&buf, &hdr, nil, 1000, 50); err != nil || fr.Kind != KindResult {
		t.Fatalf("result frame under its limit: %+v %v", fr, err)
	}
	if _, _, err := ReadFrameLimits(&buf, &hdr, nil, 1000, 50); err == nil || !strings.Contains(err.Error(), "100 bytes, limit 50") {
		t.Fatalf("egress frame over its limit: %v", err)
	}
}
