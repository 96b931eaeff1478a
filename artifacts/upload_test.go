package artifacts

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/presign"
)

// liveAuditor refuses events recorded under a cancelled context, as the
// real audit log does.
type liveAuditor struct{ *fakeAuditor }

func (a liveAuditor) Record(ctx context.Context, e audit.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return a.fakeAuditor.Record(ctx, e)
}

// withIdle reopens e's store with an upload idle limit of idle.
func (e *env) withIdle(idle time.Duration) {
	e.t.Helper()
	s, err := New(e.ctx, Config{
		Dir: e.dir, Signer: presign.NewSigner(e.key, e.srv.URL), Audit: liveAuditor{e.aud},
		Now: e.clock.Now, UploadIdle: idle,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = s
}

// rawPut opens a connection to up's URL, sends the request head announcing
// the whole of data, then the body in chunks with pause between them, and
// returns the response (or the error reading it) and how long after the
// last chunk it came.
func (e *env) rawPut(up Upload, data []byte, chunks [][2]int, pause time.Duration) (*http.Response, time.Duration, error) {
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
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/wasm\r\nContent-Length: %d\r\n\r\n",
		u.RequestURI(), u.Host, len(data))
	for i, ch := range chunks {
		if i > 0 {
			time.Sleep(pause)
		}
		if _, err := c.Write(data[ch[0]:ch[1]]); err != nil {
			return nil, 0, err
		}
	}
	t0 := time.Now()
	c.SetReadDeadline(t0.Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		resp.Body.Close()
	}
	return resp, time.Since(t0), err
}

// TestUploadStalled: a body that stops halfway is cut after the idle limit
// with 408, the refusal is audited, nothing stays on disk, and the URL
// still works.
func TestUploadStalled(t *testing.T) {
	e := newEnv(t, 0)
	const idle = 300 * time.Millisecond
	e.withIdle(idle)
	data := wasmtest.Add()
	up := e.createUpload(data)
	resp, took, err := e.rawPut(up, data, [][2]int{{0, len(data) / 2}}, 0)
	if err != nil {
		t.Fatalf("no answer to a stalled upload: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout || took < idle || took > idle+2*time.Second {
		t.Fatalf("stalled upload: %d after %s, want 408 after about %s", resp.StatusCode, took, idle)
	}
	if rec := e.uploadState(up.ID); rec.State != statePending {
		t.Fatalf("record %+v", rec)
	}
	ev := e.aud.ofType(audit.TypeUploadRejected)
	if len(ev) != 1 || ev[0].Resource != "upload/"+up.ID || ev[0].Decision != audit.Deny ||
		!strings.Contains(ev[0].Reason, fmt.Sprintf("after %d of %d bytes", len(data)/2, len(data))) {
		t.Fatalf("rejection events %+v", ev)
	}
	e.assertNothingStored()
	e.putOK(up, data)
}

// TestUploadSlowButMoving: a body that keeps arriving is not cut, however
// long it takes in all.
func TestUploadSlowButMoving(t *testing.T) {
	e := newEnv(t, 0)
	const idle = 300 * time.Millisecond
	e.withIdle(idle)
	data := wasmtest.Add()
	up := e.createUpload(data)
	var chunks [][2]int
	const n = 6 // 5 pauses of idle/2: the whole body takes longer than idle
	for i := range n {
		chunks = append(chunks, [2]int{i * len(data) / n, (i + 1) * len(data) / n})
	}
	resp, _, err := e.rawPut(up, data, chunks, idle/2)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("slow upload: %v %v", resp, err)
	}
	if _, err := e.store.Commit(e.ctx, up.ID, "admin", ""); err != nil {
		t.Fatal(err)
	}
}

// TestReusedURLAudited: replaying a used URL is refused and audited as an
// authentication failure naming the upload; the upload is untouched.
func TestReusedURLAudited(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	up := e.createUpload(data)
	e.putOK(up, data)
	if code, msg := e.put(up.URL, data, int64(len(data))); code != http.StatusConflict || msg != "upload URL already used" {
		t.Fatalf("replay: %d %q", code, msg)
	}
	ev := e.aud.ofType(audit.TypeAuthFailed)
	if len(ev) != 1 || ev[0].Resource != "upload/"+up.ID || ev[0].Decision != audit.Deny ||
		ev[0].Reason != "upload URL already used" || !strings.HasPrefix(ev[0].Details["remote"], "127.0.0.1:") {
		t.Fatalf("auth.failed events %+v", ev)
	}
	if rejected := e.aud.ofType(audit.TypeUploadRejected); len(rejected) != 0 {
		t.Fatalf("the replay rejected the upload: %+v", rejected)
	}
	if rec := e.uploadState(up.ID); rec.State != stateReceived {
		t.Fatalf("record %+v", rec)
	}
	if _, err := e.store.Commit(e.ctx, up.ID, "admin", ""); err != nil {
		t.Fatal(err)
	}
	assertNoSignatureLogged(t, e.aud, up.URL)
}

// TestUploadAbandoned: a client that hangs up halfway has the refusal
// audited, although its request's context is gone; the URL still works.
func TestUploadAbandoned(t *testing.T) {
	e := newEnv(t, 0)
	e.withIdle(time.Minute)
	data := wasmtest.Add()
	up := e.createUpload(data)
	u, _ := url.Parse(up.URL)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", u.RequestURI(), u.Host, len(data))
	c.Write(data[:len(data)/2])
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); len(e.aud.ofType(audit.TypeUploadRejected)) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("rejection not audited; record %+v", e.uploadState(up.ID))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ev := e.aud.ofType(audit.TypeUploadRejected); len(ev) != 1 || ev[0].Resource != "upload/"+up.ID {
		t.Fatalf("rejection events %+v", ev)
	}
	if rec := e.uploadState(up.ID); rec.State != statePending {
		t.Fatalf("record %+v", rec)
	}
	e.assertNothingStored()
	waitClaimReleased(t, e.store, up.ID)
	e.putOK(up, data)
}
