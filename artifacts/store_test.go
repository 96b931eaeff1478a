package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udfhost/udfhost/artifacts/internal/wasmtest"
	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/wasmenc"
	"github.com/udfhost/udfhost/presign"
)

// fakeAuditor records events; failOn, if set, makes Record fail for the
// events it matches.
type fakeAuditor struct {
	mu     sync.Mutex
	events []audit.Event
	failOn func(audit.Event) bool
}

func (a *fakeAuditor) Record(_ context.Context, e audit.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failOn != nil && a.failOn(e) {
		return errors.New("audit log unavailable")
	}
	a.events = append(a.events, e)
	return nil
}

func (a *fakeAuditor) setFail(f func(audit.Event) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failOn = f
}

func (a *fakeAuditor) ofType(typ string) []audit.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Event
	for _, e := range a.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (a *fakeAuditor) all() []audit.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]audit.Event(nil), a.events...)
}

func failType(typ string) func(audit.Event) bool {
	return func(e audit.Event) bool { return e.Type == typ }
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	dir   string
	key   []byte
	store *Store
	srv   *httptest.Server
	aud   *fakeAuditor
	clock *fakeClock
	ctx   context.Context
}

// newEnv starts a Store under a temporary directory behind a real HTTP
// server. maxSize 0 means the default.
func newEnv(t *testing.T, maxSize int64) *env {
	t.Helper()
	e := &env{
		t: t, dir: t.TempDir(), key: bytes.Repeat([]byte{0x5a}, presign.KeySize),
		aud: &fakeAuditor{}, clock: &fakeClock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)},
		ctx: context.Background(),
	}
	var handler http.Handler
	var mu sync.Mutex
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := handler
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.open(maxSize)
	mu.Lock()
	handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.store.ServeHTTP(w, r) })
	mu.Unlock()
	return e
}

// open (re)opens the store on the same directory, as a restart would.
func (e *env) open(maxSize int64) {
	e.t.Helper()
	s, err := New(e.ctx, Config{
		Dir: e.dir, Signer: presign.NewSigner(e.key, e.srv.URL), Audit: e.aud,
		MaxSize: maxSize, Now: e.clock.Now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = s
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (e *env) createUpload(data []byte) Upload {
	e.t.Helper()
	up, err := e.store.CreateUpload(e.ctx, UploadRequest{
		Env: "default", Name: "my-udf", Size: int64(len(data)), SHA256: sha(data),
		Actor: "admin", RequestID: "req-1",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return up
}

// put sends body to rawURL. contentLength -1 sends it chunked (length
// unknown to the server).
func (e *env) put(rawURL string, body []byte, contentLength int64) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPut, rawURL, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	req.ContentLength = contentLength
	req.Header.Set("Content-Type", "application/wasm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func (e *env) putOK(up Upload, data []byte) {
	e.t.Helper()
	if code, msg := e.put(up.URL, data, int64(len(data))); code != http.StatusOK {
		e.t.Fatalf("PUT: %d %s", code, msg)
	}
}

func (e *env) upload(data []byte) (*Artifact, error) {
	e.t.Helper()
	up := e.createUpload(data)
	e.putOK(up, data)
	return e.store.Commit(e.ctx, up.ID, "admin", "req-2")
}

// counts reports what is on disk: objects, metadata files, staged uploads,
// temporary files anywhere.
type counts struct{ objects, metas, staged, temps int }

func (e *env) counts() counts {
	e.t.Helper()
	var c counts
	err := filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(e.dir, p)
		switch {
		case strings.HasPrefix(d.Name(), ".tmp-"):
			c.temps++
		case strings.HasPrefix(rel, "objects/sha256/"):
			c.objects++
		case strings.HasPrefix(rel, "meta/"):
			c.metas++
		case strings.HasPrefix(rel, "uploads/") && strings.HasSuffix(rel, ".wasm"):
			c.staged++
		case strings.HasPrefix(rel, "uploads/") && strings.HasSuffix(rel, ".json"):
		default:
			e.t.Errorf("unexpected file %s", rel)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) assertNothingStored() {
	e.t.Helper()
	if c := e.counts(); c != (counts{}) {
		e.t.Fatalf("something was stored after a failure: %+v", c)
	}
}

func (e *env) uploadState(id string) *uploadRecord {
	e.t.Helper()
	rec, err := e.store.loadUpload(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

func wantErr(t *testing.T, err, sentinel error, substrs ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want %v", err, sentinel)
	}
	for _, s := range substrs {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("err %q does not mention %q", err, s)
		}
	}
}

func TestHappyPath(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	up := e.createUpload(data)
	if up.Method != "PUT" || !strings.HasPrefix(up.URL, e.srv.URL+"/v1/objects/uploads/"+up.ID+"?") {
		t.Fatalf("upload %+v", up)
	}
	// Only what a client must set itself: never Content-Length, which an
	// HTTP client sets (and Java's HttpClient refuses to be given).
	if !reflect.DeepEqual(up.Headers, map[string]string{"Content-Type": "application/wasm"}) {
		t.Fatalf("headers %v", up.Headers)
	}
	if want := e.clock.Now().Add(15 * time.Minute); !up.ExpiresAt.Equal(want) {
		t.Fatalf("expires %v, want %v", up.ExpiresAt, want)
	}
	if st := e.uploadState(up.ID).State; st != "pending" {
		t.Fatalf("state %s", st)
	}
	e.putOK(up, data)
	if st := e.uploadState(up.ID).State; st != "received" {
		t.Fatalf("state %s", st)
	}
	if c := e.counts(); c != (counts{staged: 1}) {
		t.Fatalf("after PUT: %+v", c)
	}

	art, err := e.store.Commit(e.ctx, up.ID, "admin", "req-2")
	if err != nil {
		t.Fatal(err)
	}
	if !validArtifactID(art.ID) || art.Digest != "sha256:"+sha(data) || art.Size != int64(len(data)) ||
		art.Kind != KindUDF || art.Env != "default" || art.Name != "my-udf" || art.ABIVersion != 0 || len(art.Imports) != 0 {
		t.Fatalf("artifact %+v", art)
	}
	wantExports := []Export{{Name: "add", Params: []string{"i64", "i64"}, Results: []string{"i64"}}}
	if !reflect.DeepEqual(art.Exports, wantExports) {
		t.Fatalf("exports %+v", art.Exports)
	}
	if c := e.counts(); c != (counts{objects: 1, metas: 1}) {
		t.Fatalf("after commit: %+v", c)
	}
	if rec := e.uploadState(up.ID); rec.State != "committed" || rec.ArtifactID != art.ID {
		t.Fatalf("record %+v", rec)
	}

	got, err := e.store.Get(e.ctx, art.ID)
	if err != nil || !reflect.DeepEqual(got, art) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, art)
	}
	for env, n := range map[string]int{"": 1, "default": 1, "other": 0} {
		list, err := e.store.List(e.ctx, env)
		if err != nil || len(list) != n {
			t.Fatalf("List(%q) = %v, %v", env, list, err)
		}
	}
	mod, err := e.store.Module(e.ctx, art.Digest, "")
	if err != nil || !bytes.Equal(mod, data) {
		t.Fatalf("Module = %x, %v", mod, err)
	}

	for _, typ := range []string{audit.TypeUploadURLIssued, audit.TypeUploadReceived, audit.TypeArtifactCommitted} {
		if len(e.aud.ofType(typ)) != 1 {
			t.Fatalf("want one %s event, have %+v", typ, e.aud.all())
		}
	}
	c := e.aud.ofType(audit.TypeArtifactCommitted)[0]
	if c.Resource != "artifact/"+art.ID || c.Details["digest"] != art.Digest || c.Details["kind"] != "udf" || c.Details["env"] != "default" || c.Actor != "admin" || c.RequestID != "req-2" {
		t.Fatalf("commit event %+v", c)
	}
	issued := e.aud.ofType(audit.TypeUploadURLIssued)[0]
	if issued.Resource != "upload/"+up.ID || issued.Details["sha256"] != sha(data) || issued.Details["size"] != fmt.Sprint(len(data)) || issued.Details["expires"] == "" {
		t.Fatalf("issued event %+v", issued)
	}
	assertNoSignatureLogged(t, e.aud, up.URL)
}

func assertNoSignatureLogged(t *testing.T, a *fakeAuditor, rawURL string) {
	t.Helper()
	u, _ := url.Parse(rawURL)
	sig := u.Query().Get(presign.ParamSignature)
	if sig == "" {
		t.Fatal("no signature in URL")
	}
	b, _ := json.Marshal(a.all())
	if bytes.Contains(b, []byte(sig)) {
		t.Fatal("an audit event contains the URL signature")
	}
}

func TestBatchABIModule(t *testing.T) {
	e := newEnv(t, 0)
	art, err := e.upload(wasmtest.Batch())
	if err != nil {
		t.Fatal(err)
	}
	if art.ABIVersion != 1 {
		t.Fatalf("ABI version %d", art.ABIVersion)
	}
	var names []string
	for _, x := range art.Exports {
		names = append(names, x.Name)
	}
	if want := []string{"sum", "udfhost_abi_version", "udfhost_alloc"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("exports %v, want %v (sorted, memory not listed)", names, want)
	}
}

func TestAllowedWASIImport(t *testing.T) {
	e := newEnv(t, 0)
	art, err := e.upload(wasmtest.FDWrite())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(art.Imports, []string{"wasi_snapshot_preview1.fd_write"}) {
		t.Fatalf("imports %v", art.Imports)
	}
}

func TestConnectorKind(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	up, err := e.store.CreateUpload(e.ctx, UploadRequest{Kind: KindConnector, Env: "prod-1", Size: int64(len(data)), SHA256: sha(data)})
	if err != nil {
		t.Fatal(err)
	}
	e.putOK(up, data)
	art, err := e.store.Commit(e.ctx, up.ID, "", "")
	if err != nil || art.Kind != KindConnector || art.Env != "prod-1" {
		t.Fatalf("%+v %v", art, err)
	}
}

// TestInvalidModulesRejected uploads bytes that arrive intact but fail
// validation at Commit.
// invalidModule is a module every store rejects, with the sentinel and
// words of its rejection.
type invalidModule struct {
	name     string
	data     []byte
	sentinel error
	msg      string
}

func invalidModules() []invalidModule {
	add := wasmtest.Add()
	return []invalidModule{
		{"not wasm", []byte("#!/bin/sh\nrm -rf /\n"), ErrInvalidModule, "not a WebAssembly module (bad magic)"},
		{"truncated header", add[:6], ErrInvalidModule, "truncated"},
		{"truncated body", add[:len(add)-3], ErrInvalidModule, ""},
		{"no exports", wasmtest.NoExport(), ErrInvalidModule, "exports no functions"},
		{"half ABI", wasmtest.HalfABI(), ErrInvalidModule, "udfhost_alloc"},
		{"env.system", wasmtest.ImportFunc("env", "system", []byte{wasmenc.I32}, []byte{wasmenc.I32}), ErrDisallowedImport, "env.system"},
		{"sock_accept", wasmtest.ImportFunc("wasi_snapshot_preview1", "sock_accept", []byte{wasmenc.I32, wasmenc.I32, wasmenc.I32}, []byte{wasmenc.I32}), ErrDisallowedImport, "wasi_snapshot_preview1.sock_accept"},
		{"memory import", wasmtest.ImportOther("env", "memory", wasmtest.MemoryDesc()), ErrDisallowedImport, "env.memory"},
		{"wasi memory import", wasmtest.ImportOther("wasi_snapshot_preview1", "memory", wasmtest.MemoryDesc()), ErrDisallowedImport, "wasi_snapshot_preview1.memory"},
		{"global import", wasmtest.ImportOther("wasi_snapshot_preview1", "g", wasmtest.GlobalDesc()), ErrDisallowedImport, "wasi_snapshot_preview1.g"},
		{"table import", wasmtest.ImportOther("env", "t", wasmtest.TableDesc()), ErrDisallowedImport, "env.t"},
	}
}

func TestInvalidModulesRejected(t *testing.T) {
	cases := invalidModules()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 0)
			up := e.createUpload(tc.data)
			e.putOK(up, tc.data)
			_, err := e.store.Commit(e.ctx, up.ID, "admin", "req-9")
			wantErr(t, err, tc.sentinel, tc.msg)
			e.assertNothingStored()
			rec := e.uploadState(up.ID)
			if rec.State != "rejected" || !strings.Contains(rec.Reason, tc.msg) {
				t.Fatalf("record %+v", rec)
			}
			ev := e.aud.ofType(audit.TypeArtifactRejected)
			if len(ev) != 1 || ev[0].Decision != audit.Deny || !strings.Contains(ev[0].Reason, tc.msg) || ev[0].Resource != "upload/"+up.ID {
				t.Fatalf("rejection events %+v", ev)
			}
			// A rejected upload stays rejected.
			_, err = e.store.Commit(e.ctx, up.ID, "admin", "req-10")
			wantErr(t, err, ErrUploadState, "rejected")
		})
	}
}

// TestPutFailures covers bodies and URLs the endpoint refuses. After each,
// nothing is stored, the upload cannot be committed, and the URL still
// works for the right bytes.
func TestPutFailures(t *testing.T) {
	data := wasmtest.Add()
	cases := []struct {
		name   string
		do     func(e *env, up Upload) (int, string)
		code   int
		msg    string
		reject bool // the body was refused (audited as upload.rejected)
	}{
		{"wrong sha256", func(e *env, up Upload) (int, string) {
			bad := append([]byte(nil), data...)
			bad[len(bad)-2] ^= 1
			return e.put(up.URL, bad, int64(len(bad)))
		}, 400, "upload sha256 mismatch: declared " + sha(data) + ", got ", true},
		{"body larger, honest length", func(e *env, up Upload) (int, string) {
			return e.put(up.URL, append(data, 0), int64(len(data)+1))
		}, 413, fmt.Sprintf("exceeds declared size %d", len(data)), true},
		{"body larger, chunked", func(e *env, up Upload) (int, string) {
			return e.put(up.URL, append(data, make([]byte, 5000)...), -1)
		}, 400, fmt.Sprintf("upload size exceeds declared size %d", len(data)), true},
		{"body smaller", func(e *env, up Upload) (int, string) {
			return e.put(up.URL, data[:10], 10)
		}, 400, fmt.Sprintf("upload size 10 does not match declared size %d", len(data)), true},
		{"body smaller, chunked", func(e *env, up Upload) (int, string) {
			return e.put(up.URL, data[:10], -1)
		}, 400, fmt.Sprintf("upload size 10 does not match declared size %d", len(data)), true},
		{"content-length above max", func(e *env, up Upload) (int, string) {
			big := make([]byte, 5000)
			return e.put(up.URL, big, int64(len(big)))
		}, 413, "exceeds the maximum artifact size 4096", true},
		{"expired URL", func(e *env, up Upload) (int, string) {
			e.clock.Advance(15*time.Minute + time.Second)
			return e.put(up.URL, data, int64(len(data)))
		}, 403, "upload URL expired", false},
		{"tampered signature", func(e *env, up Upload) (int, string) {
			return e.put(tamper(t, up.URL, func(q url.Values) {
				s := []byte(q.Get(presign.ParamSignature))
				s[10] = map[bool]byte{true: 'a', false: 'b'}[s[10] != 'a']
				q.Set(presign.ParamSignature, string(s))
			}), data, int64(len(data)))
		}, 403, "upload URL signature invalid", false},
		{"tampered size", func(e *env, up Upload) (int, string) {
			return e.put(tamper(t, up.URL, func(q url.Values) { q.Set(presign.ParamSize, "10") }), data[:10], 10)
		}, 403, "upload URL signature invalid", false},
		{"missing signature", func(e *env, up Upload) (int, string) {
			return e.put(tamper(t, up.URL, func(q url.Values) { q.Del(presign.ParamSignature) }), data, int64(len(data)))
		}, 403, "upload URL malformed", false},
		{"wrong method", func(e *env, up Upload) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, up.URL, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, strings.TrimSpace(string(b))
		}, 405, "not allowed", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 4096)
			up := e.createUpload(data)
			code, msg := tc.do(e, up)
			if code != tc.code || !strings.Contains(msg, tc.msg) || strings.Contains(msg, "\n") {
				t.Fatalf("got %d %q, want %d containing %q", code, msg, tc.code, tc.msg)
			}
			e.assertNothingStored()
			rec := e.uploadState(up.ID)
			_, err := e.store.Commit(e.ctx, up.ID, "admin", "")
			if rec.State != "pending" {
				t.Fatalf("a refused PUT changed the upload: %+v", rec)
			}
			if tc.reject {
				if ev := e.aud.ofType(audit.TypeUploadRejected); len(ev) != 1 || !strings.Contains(ev[0].Reason, tc.msg) ||
					ev[0].Resource != "upload/"+up.ID || ev[0].Decision != audit.Deny {
					t.Fatalf("rejection events %+v", ev)
				}
			}
			if tc.name == "expired URL" {
				wantErr(t, err, ErrUploadState, "expired")
				e.assertNothingStored()
				return
			}
			wantErr(t, err, ErrUploadState, "pending: nothing was uploaded yet")
			e.assertNothingStored()
			// Nothing was stored: the URL is not used up. The right bytes
			// go through, and only then is it.
			e.putOK(up, data)
			if code, msg := e.put(up.URL, data, int64(len(data))); code != 409 || msg != "upload URL already used" {
				t.Fatalf("replay after the upload: %d %q", code, msg)
			}
			if _, err := e.store.Commit(e.ctx, up.ID, "admin", ""); err != nil {
				t.Fatal(err)
			}
			assertNoSignatureLogged(t, e.aud, up.URL)
		})
	}
}

func tamper(t *testing.T, raw string, f func(url.Values)) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	f(q)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestTamperedURLDoesNotBurnUpload: a forged URL must not consume the
// upload; the genuine URL still works afterwards.
func TestTamperedURLDoesNotBurnUpload(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	up := e.createUpload(data)
	bad := tamper(t, up.URL, func(q url.Values) { q.Set(presign.ParamSignature, strings.Repeat("0", 64)) })
	if code, _ := e.put(bad, data, int64(len(data))); code != 403 {
		t.Fatalf("forged URL: %d", code)
	}
	if len(e.aud.ofType(audit.TypeAuthFailed)) != 1 {
		t.Fatalf("events %+v", e.aud.all())
	}
	e.putOK(up, data)
}

func TestReusedURL(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	up := e.createUpload(data)
	e.putOK(up, data)
	if code, msg := e.put(up.URL, data, int64(len(data))); code != 409 || msg != "upload URL already used" {
		t.Fatalf("second PUT: %d %q", code, msg)
	}
	// The successful upload is unaffected by the refused reuse.
	if _, err := e.store.Commit(e.ctx, up.ID, "", ""); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.put(up.URL, data, int64(len(data))); code != 409 {
		t.Fatalf("PUT after commit: %d", code)
	}
}

// TestConcurrentPuts: of several simultaneous uses of one URL exactly one
// succeeds.
func TestConcurrentPuts(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	up := e.createUpload(data)
	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = e.put(up.URL, data, int64(len(data)))
		}()
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 409:
		default:
			t.Fatalf("unexpected status %d", c)
		}
	}
	if ok != 1 {
		t.Fatalf("%d PUTs succeeded, want 1", ok)
	}
}

func TestCommitStates(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	up := e.createUpload(data)
	_, err := e.store.Commit(e.ctx, up.ID, "", "")
	wantErr(t, err, ErrUploadState, "upload "+up.ID+" is pending: nothing was uploaded yet")
	e.assertNothingStored()

	e.putOK(up, data)
	art, err := e.store.Commit(e.ctx, up.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.store.Commit(e.ctx, up.ID, "", "")
	wantErr(t, err, ErrUploadState, "already committed", art.ID)
	if list, _ := e.store.List(e.ctx, ""); len(list) != 1 {
		t.Fatalf("second commit created an artifact: %v", list)
	}

	_, err = e.store.Commit(e.ctx, "up-0000000000000000", "", "")
	wantErr(t, err, ErrNotFound)
	_, err = e.store.Commit(e.ctx, "../meta/x", "", "")
	wantErr(t, err, ErrInvalidArgument)
}

func TestSameBytesTwice(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	a1, err := e.upload(data)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	a2, err := e.upload(data)
	if err != nil {
		t.Fatal(err)
	}
	if a1.ID == a2.ID || a1.Digest != a2.Digest {
		t.Fatalf("%s %s / %s %s", a1.ID, a1.Digest, a2.ID, a2.Digest)
	}
	if c := e.counts(); c != (counts{objects: 1, metas: 2}) {
		t.Fatalf("%+v", c)
	}
	list, err := e.store.List(e.ctx, "default")
	if err != nil || len(list) != 2 || list[0].ID != a1.ID || list[1].ID != a2.ID {
		t.Fatalf("List = %v, %v", list, err)
	}

	if err := e.store.Delete(e.ctx, a1.ID, "admin", "req-d"); err != nil {
		t.Fatal(err)
	}
	if c := e.counts(); c != (counts{objects: 1, metas: 1}) {
		t.Fatalf("after first delete: %+v", c)
	}
	if _, err := e.store.Get(e.ctx, a1.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get deleted: %v", err)
	}
	if _, err := e.store.Module(e.ctx, a2.Digest, ""); err != nil {
		t.Fatalf("object of the remaining artifact: %v", err)
	}
	if err := e.store.Delete(e.ctx, a2.ID, "admin", "req-d"); err != nil {
		t.Fatal(err)
	}
	e.assertNothingStored()
	if _, err := e.store.Module(e.ctx, a2.Digest, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Module after delete: %v", err)
	}
	if err := e.store.Delete(e.ctx, a2.ID, "admin", "req-d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if ev := e.aud.ofType(audit.TypeArtifactDeleted); len(ev) != 2 || ev[0].Resource != "artifact/"+a1.ID {
		t.Fatalf("delete events %+v", ev)
	}
}

func TestListOrderAndFilter(t *testing.T) {
	e := newEnv(t, 0)
	var ids []string
	for i, envName := range []string{"b", "a", "b"} {
		data := wasmtest.Add()
		data = append(data, wasmenc.Section(wasmenc.SecCustom, wasmenc.Name("n"), []byte{byte(i)})...) // custom section: distinct bytes
		up, err := e.store.CreateUpload(e.ctx, UploadRequest{Env: envName, Size: int64(len(data)), SHA256: sha(data)})
		if err != nil {
			t.Fatal(err)
		}
		e.putOK(up, data)
		art, err := e.store.Commit(e.ctx, up.ID, "", "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, art.ID)
		e.clock.Advance(time.Minute)
	}
	list, _ := e.store.List(e.ctx, "")
	if len(list) != 3 || list[0].ID != ids[0] || list[1].ID != ids[1] || list[2].ID != ids[2] {
		t.Fatalf("List = %v", list)
	}
	list, _ = e.store.List(e.ctx, "b")
	if len(list) != 2 || list[0].ID != ids[0] || list[1].ID != ids[2] {
		t.Fatalf("List(b) = %v", list)
	}
}

func TestModuleDetectsCorruption(t *testing.T) {
	e := newEnv(t, 0)
	art, err := e.upload(wasmtest.Add())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(e.dir, "objects", "sha256", strings.TrimPrefix(art.Digest, "sha256:"))
	b, _ := os.ReadFile(p)
	b[len(b)-2] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Module(e.ctx, art.Digest, ""); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Module of a corrupted object: %v", err)
	}
	for _, d := range []string{"", "sha256:", "sha256:../../x", "md5:" + strings.Repeat("0", 64), "sha256:" + strings.Repeat("A", 64)} {
		if _, err := e.store.Module(e.ctx, d, ""); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("Module(%q): %v", d, err)
		}
	}
}

func TestCreateUploadValidation(t *testing.T) {
	e := newEnv(t, 1000)
	good := UploadRequest{Env: "default", Size: 100, SHA256: strings.Repeat("0", 64)}
	cases := []struct {
		name     string
		edit     func(r *UploadRequest)
		sentinel error
		msg      []string
	}{
		{"bad kind", func(r *UploadRequest) { r.Kind = "library" }, ErrInvalidArgument, []string{"library"}},
		{"no env", func(r *UploadRequest) { r.Env = "" }, ErrInvalidArgument, []string{"environment"}},
		{"env upper", func(r *UploadRequest) { r.Env = "Prod" }, ErrInvalidArgument, []string{"Prod"}},
		{"env path", func(r *UploadRequest) { r.Env = "../x" }, ErrInvalidArgument, []string{"../x"}},
		{"env long", func(r *UploadRequest) { r.Env = strings.Repeat("a", 64) }, ErrInvalidArgument, []string{"environment"}},
		{"name slash", func(r *UploadRequest) { r.Name = "a/b" }, ErrInvalidArgument, []string{"a/b"}},
		{"name leading dot", func(r *UploadRequest) { r.Name = ".x" }, ErrInvalidArgument, []string{".x"}},
		{"size zero", func(r *UploadRequest) { r.Size = 0 }, ErrInvalidArgument, []string{"size"}},
		{"size negative", func(r *UploadRequest) { r.Size = -5 }, ErrInvalidArgument, []string{"size"}},
		{"size too large", func(r *UploadRequest) { r.Size = 1001 }, ErrTooLarge, []string{"1001", "1000"}},
		{"sha upper", func(r *UploadRequest) { r.SHA256 = strings.Repeat("A", 64) }, ErrInvalidArgument, []string{"sha256"}},
		{"sha short", func(r *UploadRequest) { r.SHA256 = "abc" }, ErrInvalidArgument, []string{"sha256"}},
		{"ttl too long", func(r *UploadRequest) { r.TTL = time.Hour + time.Second }, ErrInvalidArgument, []string{"1h0m1s", "1h0m0s"}},
		{"ttl negative", func(r *UploadRequest) { r.TTL = -time.Second }, ErrInvalidArgument, []string{"negative"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.edit(&r)
			_, err := e.store.CreateUpload(e.ctx, r)
			wantErr(t, err, tc.sentinel, tc.msg...)
		})
	}
	e.assertNothingStored()
	if n := len(e.aud.all()); n != 0 {
		t.Fatalf("refused requests were audited as issued: %d events", n)
	}
	r := good
	r.Name, r.Kind, r.TTL = "my_udf.v2", KindUDF, time.Hour
	up, err := e.store.CreateUpload(e.ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if !up.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("expires %v", up.ExpiresAt)
	}
}

func TestAuditFailClosed(t *testing.T) {
	data := wasmtest.Add()

	t.Run("url issue", func(t *testing.T) {
		e := newEnv(t, 0)
		e.aud.setFail(failType(audit.TypeUploadURLIssued))
		_, err := e.store.CreateUpload(e.ctx, UploadRequest{Env: "default", Size: int64(len(data)), SHA256: sha(data)})
		if err == nil {
			t.Fatal("URL issued without an audit record")
		}
		entries, _ := os.ReadDir(filepath.Join(e.dir, "uploads"))
		if len(entries) != 0 {
			t.Fatalf("upload record kept: %v", entries)
		}
	})

	t.Run("upload received", func(t *testing.T) {
		e := newEnv(t, 0)
		up := e.createUpload(data)
		e.aud.setFail(failType(audit.TypeUploadReceived))
		code, msg := e.put(up.URL, data, int64(len(data)))
		if code != 500 || !strings.Contains(msg, "audit") {
			t.Fatalf("PUT: %d %q", code, msg)
		}
		e.assertNothingStored()
		_, err := e.store.Commit(e.ctx, up.ID, "", "")
		wantErr(t, err, ErrUploadState, "pending")
		// Nothing was kept, so once the log works again the PUT can be
		// retried.
		e.aud.setFail(nil)
		e.putOK(up, data)
	})

	t.Run("commit", func(t *testing.T) {
		e := newEnv(t, 0)
		up := e.createUpload(data)
		e.putOK(up, data)
		e.aud.setFail(failType(audit.TypeArtifactCommitted))
		if _, err := e.store.Commit(e.ctx, up.ID, "", ""); err == nil {
			t.Fatal("commit succeeded without an audit record")
		}
		if c := e.counts(); c != (counts{staged: 1}) {
			t.Fatalf("after refused commit: %+v", c)
		}
		// Once the log works again the commit can be retried.
		e.aud.setFail(nil)
		if _, err := e.store.Commit(e.ctx, up.ID, "", ""); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		e := newEnv(t, 0)
		art, err := e.upload(data)
		if err != nil {
			t.Fatal(err)
		}
		e.aud.setFail(failType(audit.TypeArtifactDeleted))
		if err := e.store.Delete(e.ctx, art.ID, "", ""); err == nil {
			t.Fatal("delete succeeded without an audit record")
		}
		if _, err := e.store.Get(e.ctx, art.ID); err != nil {
			t.Fatalf("artifact gone after refused delete: %v", err)
		}
	})
}

// TestRestart: pending and received uploads survive a restart; an upload
// an older version marked "uploading" when it stopped is pending again
// (nothing was stored); leftovers of a crash are cleaned up.
func TestRestart(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	pending := e.createUpload(data)
	received := e.createUpload(data)
	e.putOK(received, data)
	interrupted := e.createUpload(data)
	rec := e.uploadState(interrupted.ID)
	rec.State = "uploading"
	if err := e.store.saveUpload(rec); err != nil {
		t.Fatal(err)
	}
	// Crash debris: a temp file, an object without metadata.
	os.WriteFile(filepath.Join(e.dir, "uploads", ".tmp-"+interrupted.ID+"-123"), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(e.dir, "objects", "sha256", strings.Repeat("e", 64)), []byte("orphan"), 0o600)

	e.open(0)
	if c := e.counts(); c != (counts{staged: 1}) {
		t.Fatalf("after restart: %+v", c)
	}
	if r := e.uploadState(interrupted.ID); r.State != "pending" {
		t.Fatalf("interrupted upload: %+v", r)
	}
	e.putOK(interrupted, data)
	if _, err := e.store.Commit(e.ctx, received.ID, "", ""); err != nil {
		t.Fatal(err)
	}
	e.putOK(pending, data)
	if _, err := e.store.Commit(e.ctx, pending.ID, "", ""); err != nil {
		t.Fatal(err)
	}
	if c := e.counts(); c != (counts{objects: 1, metas: 2, staged: 1}) {
		t.Fatalf("end: %+v", c)
	}
}

// TestRestartAfterCommitPoint simulates a crash after the metadata was
// written but before the upload record said so: New marks the upload
// committed rather than letting it produce a second artifact.
func TestRestartAfterCommitPoint(t *testing.T) {
	e := newEnv(t, 0)
	data := wasmtest.Add()
	up := e.createUpload(data)
	e.putOK(up, data)
	staged, _ := os.ReadFile(filepath.Join(e.dir, "uploads", up.ID+".wasm"))
	before := e.uploadState(up.ID)
	art, err := e.store.Commit(e.ctx, up.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	// Roll the record and the staged file back to before the commit.
	if err := e.store.saveUpload(before); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.dir, "uploads", up.ID+".wasm"), staged, 0o600)

	e.open(0)
	if r := e.uploadState(up.ID); r.State != "committed" || r.ArtifactID != art.ID {
		t.Fatalf("record after restart: %+v", r)
	}
	if c := e.counts(); c != (counts{objects: 1, metas: 1}) {
		t.Fatalf("%+v", c)
	}
}

func TestBadIDs(t *testing.T) {
	e := newEnv(t, 0)
	for _, id := range []string{"", "art-", "../x", "art-0123456789ABCDEF", "art-0123456789abcdef/.."} {
		if _, err := e.store.Get(e.ctx, id); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("Get(%q): %v", id, err)
		}
		if err := e.store.Delete(e.ctx, id, "", ""); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("Delete(%q): %v", id, err)
		}
	}
	if _, err := e.store.Get(e.ctx, "art-0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
}

func TestNewRequiresConfig(t *testing.T) {
	s := presign.NewSigner(make([]byte, 32), "http://x")
	for name, cfg := range map[string]Config{
		"no dir":     {Signer: s, Audit: &fakeAuditor{}},
		"no signer":  {Dir: t.TempDir(), Audit: &fakeAuditor{}},
		"no auditor": {Dir: t.TempDir(), Signer: s},
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
