package artifacts

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/presign"
)

// reopen reopens e's store with cfg's optional fields set (Dir, Signer,
// Now and, unless given, Audit are e's).
func (e *env) reopen(cfg Config) {
	e.t.Helper()
	cfg.Dir, cfg.Signer, cfg.Now = e.dir, presign.NewSigner(e.key, e.srv.URL), e.clock.Now
	if cfg.Audit == nil {
		cfg.Audit = liveAuditor{e.aud}
	}
	s, err := New(e.ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = s
}

// dialPut opens a connection to up's URL and sends a PUT's head with the
// given extra header lines.
func (e *env) dialPut(up Upload, head string) *net.TCPConn {
	e.t.Helper()
	u, err := url.Parse(up.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", u.RequestURI(), u.Host, head)
	return c.(*net.TCPConn)
}

func readResponse(t *testing.T, c net.Conn) (int, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func (s *Store) claimed(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.receiving[id]
	return ok
}

func waitClaim(t *testing.T, s *Store, id string, want bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); s.claimed(id) != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("upload %s claimed = %v, want %v", id, !want, want)
		}
	}
}

func waitClaimReleased(t *testing.T, s *Store, id string) { waitClaim(t, s, id, false) }

// TestUploadHalfClose: a client that sends exactly the declared bytes and
// then closes its side of the connection (shutdown(SHUT_WR), legal
// HTTP/1.1) gets its upload stored and a 200, with the real audit log,
// which refuses records under a cancelled context.
func TestUploadHalfClose(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			e := newEnv(t, 0)
			log, err := audit.Open(filepath.Join(t.TempDir(), "audit.log"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { log.Close() })
			e.reopen(Config{Audit: log})
			data := wasmtest.Add()
			up := e.createUpload(data)
			var c *net.TCPConn
			if chunked {
				c = e.dialPut(up, "Transfer-Encoding: chunked\r\n")
				fmt.Fprintf(c, "%x\r\n%s\r\n0\r\n\r\n", len(data), data)
			} else {
				c = e.dialPut(up, fmt.Sprintf("Content-Length: %d\r\n", len(data)))
				c.Write(data)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if code, msg := readResponse(t, c); code != http.StatusOK {
				t.Fatalf("half-closed PUT: %d %q", code, msg)
			}
			if rec := e.uploadState(up.ID); rec.State != stateReceived {
				t.Fatalf("record %+v", rec)
			}
			if _, err := e.store.Commit(e.ctx, up.ID, "admin", ""); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(log.Path())
			if !bytes.Contains(b, []byte(audit.TypeUploadReceived)) {
				t.Fatalf("no %s record in the audit log", audit.TypeUploadReceived)
			}
		})
	}
}

// TestUploadListedHeadersOnly: a client that sets only the headers the
// upload lists, and lets its HTTP library frame the body (Content-Length
// or chunked), succeeds.
func TestUploadListedHeadersOnly(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			e := newEnv(t, 0)
			data := wasmtest.Add()
			up := e.createUpload(data)
			var body io.Reader = bytes.NewReader(data)
			if chunked {
				body = io.MultiReader(body) // length unknown to net/http: chunked
			}
			req, err := http.NewRequest(up.Method, up.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range up.Headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("PUT: %s", resp.Status)
			}
			if (req.ContentLength == 0) != chunked {
				t.Fatalf("request framing: Content-Length %d", req.ContentLength)
			}
			if _, err := e.store.Commit(e.ctx, up.ID, "admin", ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestUploadOnePUTAtATime: while one PUT of an upload streams, another is
// refused with 409 "upload in progress" and a Retry-After, and audited;
// when the first one fails, a retry stores the upload; a replay after that
// is refused as a used URL.
func TestUploadOnePUTAtATime(t *testing.T) {
	e := newEnv(t, 0)
	e.reopen(Config{UploadIdle: time.Minute})
	data := wasmtest.Add()
	up := e.createUpload(data)
	first := e.dialPut(up, fmt.Sprintf("Content-Length: %d\r\n", len(data)))
	first.Write(data[:len(data)/2])
	waitClaim(t, e.store, up.ID, true)

	req, _ := http.NewRequest(http.MethodPut, up.URL, bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.HasPrefix(string(msg), "upload in progress") || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("concurrent PUT: %s %q Retry-After %q", resp.Status, msg, resp.Header.Get("Retry-After"))
	}
	if ev := e.aud.ofType(audit.TypeUploadRejected); len(ev) != 1 || !strings.HasPrefix(ev[0].Reason, "upload in progress") || ev[0].Resource != "upload/"+up.ID {
		t.Fatalf("refusal of the concurrent PUT: %+v", ev)
	}
	if _, err := e.store.Commit(e.ctx, up.ID, "", ""); err == nil || !strings.Contains(err.Error(), "still receiving") {
		t.Fatalf("commit during the PUT: %v", err)
	}

	first.Close() // the first PUT fails: the connection is cut
	waitClaimReleased(t, e.store, up.ID)
	e.assertNothingStored()
	e.putOK(up, data)
	if code, msg := e.put(up.URL, data, int64(len(data))); code != http.StatusConflict || msg != "upload URL already used" {
		t.Fatalf("replay: %d %q", code, msg)
	}
	if ev := e.aud.ofType(audit.TypeAuthFailed); len(ev) != 1 || ev[0].Reason != "upload URL already used" {
		t.Fatalf("replay not audited: %+v", ev)
	}
	if _, err := e.store.Commit(e.ctx, up.ID, "", ""); err != nil {
		t.Fatal(err)
	}
}

// TestUploadCutAtExpiry: a body dripped slowly, never stalling for the
// idle limit, is cut off at the URL's expiry plus the grace, stores
// nothing, and the cut-off is audited naming the expiry.
func TestUploadCutAtExpiry(t *testing.T) {
	e := newEnv(t, 0)
	const grace = 300 * time.Millisecond
	e.reopen(Config{UploadIdle: 10 * time.Second, ExpiryGrace: grace})
	data := wasmtest.Add()
	up, err := e.store.CreateUpload(e.ctx, UploadRequest{Env: "default", Size: int64(len(data)), SHA256: sha(data), TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().Add(up.ExpiresAt.Sub(e.clock.Now())) // in wall-clock time
	c := e.dialPut(up, fmt.Sprintf("Content-Length: %d\r\n", len(data)))
	// One byte every 100 ms: the whole body would take ~4 s, far past
	// the expiry, without ever stalling.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range data {
			if _, err := c.Write(data[i : i+1]); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	code, msg := readResponse(t, c)
	cut := time.Now()
	c.Close()
	<-done
	if code != http.StatusRequestTimeout || !strings.Contains(msg, "expired during the transfer") {
		t.Fatalf("dripped PUT: %d %q", code, msg)
	}
	if cut.Before(expiry.Add(grace)) {
		t.Fatalf("cut %s before expiry + grace", expiry.Add(grace).Sub(cut))
	}
	ev := e.aud.ofType(audit.TypeUploadRejected)
	if len(ev) != 1 || ev[0].Decision != audit.Deny || ev[0].Resource != "upload/"+up.ID || !strings.Contains(ev[0].Reason, "expired") {
		t.Fatalf("cut-off not audited: %+v", ev)
	}
	e.assertNothingStored()
	if rec := e.uploadState(up.ID); rec.State != statePending {
		t.Fatalf("record %+v", rec)
	}
}

// TestUploadRecordFailure: when the upload record cannot be written after
// the bytes were verified and staged (here its file was replaced by a
// directory mid-transfer, a fault root cannot override), the PUT fails with
// 500, the staged bytes are removed, the log says nothing was kept, and
// once the fault is gone the URL still works.
func TestUploadRecordFailure(t *testing.T) {
	e := newEnv(t, 0)
	e.reopen(Config{UploadIdle: time.Minute})
	data := wasmtest.Add()
	up := e.createUpload(data)
	c := e.dialPut(up, fmt.Sprintf("Content-Length: %d\r\n", len(data)))
	c.Write(data[:len(data)/2])
	waitClaim(t, e.store, up.ID, true)

	recPath := filepath.Join(e.dir, "uploads", up.ID+".json")
	saved, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(recPath); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(recPath, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	c.Write(data[len(data)/2:])
	if code, msg := readResponse(t, c); code != http.StatusInternalServerError || msg != "could not record the upload" {
		t.Fatalf("PUT whose record cannot be written: %d %q", code, msg)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "uploads", up.ID+".wasm")); !os.IsNotExist(err) {
		t.Fatalf("staged bytes left behind: %v", err)
	}
	ev := e.aud.ofType(audit.TypeUploadReceived)
	if len(ev) != 2 || ev[1].Decision != audit.Error || !strings.Contains(ev[1].Reason, "nothing was kept") {
		t.Fatalf("upload.received records %+v", ev)
	}

	if err := os.RemoveAll(recPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recPath, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	waitClaimReleased(t, e.store, up.ID)
	e.putOK(up, data)
	if _, err := e.store.Commit(e.ctx, up.ID, "", ""); err != nil {
		t.Fatal(err)
	}
}

// TestOverrunBodyGetsItsAnswer: a client that writes its whole body
// before reading (no Expect: 100-continue, as curl, Go and Python send
// one) learns why a body over the upload's size was refused: the server
// reads the overrun before it answers and closes, instead of resetting
// the connection under the client's writes.
func TestOverrunBodyGetsItsAnswer(t *testing.T) {
	e := newEnv(t, 0)
	data := distinctModule(0)
	up := e.createUpload(data)
	body := append(bytes.Clone(data), make([]byte, 4<<20)...) // more than loopback buffers hold
	c := e.dialPut(up, fmt.Sprintf("Content-Length: %d\r\n", len(body)))
	c.SetWriteDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(body); err != nil {
		t.Fatalf("writing the body: %v (the server closed the connection before answering)", err)
	}
	if status, msg := readResponse(t, c); status != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "exceeds declared size") {
		t.Fatalf("answer %d %q, want 413 naming the declared size", status, msg)
	}
	e.assertNothingStored()
}
