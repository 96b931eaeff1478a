package presign

import (
	"bytes"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	testKey = bytes.Repeat([]byte{7}, KeySize)
	t0      = time.Unix(1_800_000_000, 0)
	digest  = strings.Repeat("ab", 32)
)

func testParams() Params {
	return Params{Method: "PUT", Key: "uploads/up-0123456789abcdef", Size: 42, SHA256: digest, ID: "up-0123456789abcdef", Expires: t0.Add(15 * time.Minute)}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// requestURL is what a server sees: path and query only.
func requestURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u := mustParse(t, raw)
	return &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
}

func TestRoundTrip(t *testing.T) {
	for _, base := range []string{"http://127.0.0.1:7444", "http://127.0.0.1:7444/", "https://h.example/prefix"} {
		s := NewSigner(testKey, base)
		p := testParams()
		raw := s.Sign(p)
		if !strings.HasPrefix(raw, strings.TrimRight(base, "/")+"/v1/objects/uploads/up-0123456789abcdef?") {
			t.Fatalf("unexpected URL %s", raw)
		}
		got, err := s.Verify("PUT", requestURL(t, raw), t0)
		if err != nil {
			t.Fatalf("Verify(%s): %v", base, err)
		}
		if !got.Expires.Equal(p.Expires) {
			t.Fatalf("expires %v, want %v", got.Expires, p.Expires)
		}
		got.Expires = p.Expires
		if got != p {
			t.Fatalf("got %+v, want %+v", got, p)
		}
	}
}

func TestGetRoundTrip(t *testing.T) {
	s := NewSigner(testKey, "http://x")
	p := Params{Method: "GET", Key: "objects/sha256/" + digest, SHA256: digest, ID: "w-1", Expires: t0.Add(time.Minute)}
	if _, err := s.Verify("GET", requestURL(t, s.Sign(p)), t0); err != nil {
		t.Fatal(err)
	}
}

func TestExpiresTruncatedToSeconds(t *testing.T) {
	s := NewSigner(testKey, "http://x")
	p := testParams()
	p.Expires = p.Expires.Add(900 * time.Millisecond)
	got, err := s.Verify("PUT", requestURL(t, s.Sign(p)), t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Expires.Unix() != p.Expires.Unix() {
		t.Fatalf("expires %v", got.Expires)
	}
}

// TestTamperedFields changes each signed field in the URL; every change
// must fail the signature check.
func TestTamperedFields(t *testing.T) {
	s := NewSigner(testKey, "http://x")
	raw := s.Sign(testParams())
	cases := map[string]func(u *url.URL, q url.Values){
		"method":  func(u *url.URL, q url.Values) { q.Set(ParamMethod, "GET") },
		"key":     func(u *url.URL, q url.Values) { u.Path = "/v1/objects/uploads/up-0123456789abcdee" },
		"expires": func(u *url.URL, q url.Values) { q.Set(ParamExpires, "1800000901") },
		"size":    func(u *url.URL, q url.Values) { q.Set(ParamSize, "43") },
		"sha256":  func(u *url.URL, q url.Values) { q.Set(ParamSHA256, strings.Repeat("cd", 32)) },
		"id":      func(u *url.URL, q url.Values) { q.Set(ParamID, "up-other") },
		"signature": func(u *url.URL, q url.Values) {
			sig := []byte(q.Get(ParamSignature))
			if sig[0] == '0' {
				sig[0] = '1'
			} else {
				sig[0] = '0'
			}
			q.Set(ParamSignature, string(sig))
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			u := requestURL(t, raw)
			q := u.Query()
			tamper(u, q)
			u.RawQuery = q.Encode()
			method := "PUT"
			if name == "method" {
				method = "GET"
			}
			_, err := s.Verify(method, u, t0)
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
			if strings.Contains(err.Error(), q.Get(ParamSignature)) || strings.Contains(err.Error(), mustParse(t, raw).Query().Get(ParamSignature)) {
				t.Fatalf("error leaks the signature: %v", err)
			}
		})
	}
}

func TestOtherKeyFails(t *testing.T) {
	raw := NewSigner(testKey, "http://x").Sign(testParams())
	other := NewSigner(bytes.Repeat([]byte{8}, KeySize), "http://x")
	if _, err := other.Verify("PUT", requestURL(t, raw), t0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("err = %v", err)
	}
}

func TestExpired(t *testing.T) {
	s := NewSigner(testKey, "http://x")
	p := testParams()
	u := requestURL(t, s.Sign(p))
	if _, err := s.Verify("PUT", u, p.Expires); err != nil {
		t.Fatalf("at expiry second: %v", err)
	}
	_, err := s.Verify("PUT", u, p.Expires.Add(time.Second))
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("err = %v, want ErrExpired", err)
	}
	// A tampered, expired URL reports the signature, not the expiry.
	q := u.Query()
	q.Set(ParamSize, "1")
	u.RawQuery = q.Encode()
	if _, err := s.Verify("PUT", u, p.Expires.Add(time.Hour)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("err = %v, want ErrBadSignature", err)
	}
}

func TestWrongMethod(t *testing.T) {
	s := NewSigner(testKey, "http://x")
	u := requestURL(t, s.Sign(testParams()))
	for _, m := range []string{"GET", "POST", "put", "DELETE"} {
		if _, err := s.Verify(m, u, t0); !errors.Is(err, ErrWrongMethod) {
			t.Fatalf("%s: err = %v, want ErrWrongMethod", m, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	s := NewSigner(testKey, "http://x")
	raw := s.Sign(testParams())
	base := requestURL(t, raw)
	sig := base.Query().Get(ParamSignature)
	edit := func(f func(q url.Values)) *url.URL {
		u := *base
		q := u.Query()
		f(q)
		u.RawQuery = q.Encode()
		return &u
	}
	cases := map[string]*url.URL{
		"nil URL":        nil,
		"wrong prefix":   {Path: "/v1/other/uploads/x", RawQuery: base.RawQuery},
		"empty key":      {Path: "/v1/objects/", RawQuery: base.RawQuery},
		"dotdot key":     {Path: "/v1/objects/uploads/../meta/x", RawQuery: base.RawQuery},
		"empty segment":  {Path: "/v1/objects/uploads//x", RawQuery: base.RawQuery},
		"newline in key": {Path: "/v1/objects/uploads/a\nb", RawQuery: base.RawQuery},
		"bad query":      {Path: base.Path, RawQuery: base.RawQuery + "&%zz=1"},
		"semicolon":      {Path: base.Path, RawQuery: base.RawQuery + ";x=1"},
		"extra param":    edit(func(q url.Values) { q.Set("X-Udfhost-Extra", "1") }),
		"other param":    edit(func(q url.Values) { q.Set("foo", "1") }),
		"lower-case name": edit(func(q url.Values) {
			q.Set("x-udfhost-size", q.Get(ParamSize))
			q.Del(ParamSize)
		}),
		"dup size":          edit(func(q url.Values) { q.Add(ParamSize, "42") }),
		"dup signature":     edit(func(q url.Values) { q.Add(ParamSignature, sig) }),
		"bad method":        edit(func(q url.Values) { q.Set(ParamMethod, "DELETE") }),
		"size not number":   edit(func(q url.Values) { q.Set(ParamSize, "4x") }),
		"size leading zero": edit(func(q url.Values) { q.Set(ParamSize, "042") }),
		"size plus":         edit(func(q url.Values) { q.Set(ParamSize, "+42") }),
		"size negative":     edit(func(q url.Values) { q.Set(ParamSize, "-1") }),
		"expires text":      edit(func(q url.Values) { q.Set(ParamExpires, "tomorrow") }),
		"sha upper":         edit(func(q url.Values) { q.Set(ParamSHA256, strings.ToUpper(digest)) }),
		"sha short":         edit(func(q url.Values) { q.Set(ParamSHA256, digest[:10]) }),
		"id newline":        edit(func(q url.Values) { q.Set(ParamID, "a\nb") }),
		"sig not hex":       edit(func(q url.Values) { q.Set(ParamSignature, strings.Repeat("zz", 32)) }),
		"sig short":         edit(func(q url.Values) { q.Set(ParamSignature, sig[:20]) }),
	}
	for _, name := range []string{ParamMethod, ParamExpires, ParamSize, ParamSHA256, ParamID, ParamSignature} {
		name := name
		cases["missing "+name] = edit(func(q url.Values) { q.Del(name) })
	}
	for name, u := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := s.Verify("PUT", u, t0)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if strings.Contains(err.Error(), sig) || (len(sig) > 20 && strings.Contains(err.Error(), sig[:20])) {
				t.Fatalf("error leaks the signature: %v", err)
			}
		})
	}
}

// TestCanonicalUnambiguous checks that moving bytes between adjacent fields
// changes the MAC.
func TestCanonicalUnambiguous(t *testing.T) {
	s := NewSigner(testKey, "http://x")
	a := s.mac("PUT", "uploads/a", 1, 2, "", "b")
	b := s.mac("PUT", "uploads/", 1, 2, "a", "b")
	c := s.mac("PUT", "uploads/a", 1, 2, "b", "")
	if bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(b, c) {
		t.Fatal("MAC collides across field boundaries")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "presign.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != KeySize {
		t.Fatalf("key length %d", len(k1))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1, k2) {
		t.Fatal("second load returned another key")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	keys := make([][]byte, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = LoadOrCreateKey(path)
		}()
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatal("concurrent callers got different keys")
		}
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := bytes.Repeat([]byte{1}, KeySize)
	cases := map[string]string{
		"group readable": write("g", good, 0o640),
		"world readable": write("w", good, 0o604),
		"group writable": write("gw", good, 0o620),
		"short":          write("s", good[:16], 0o600),
		"long":           write("l", append(good, 1), 0o600),
		"empty":          write("e", nil, 0o600),
	}
	sub := filepath.Join(dir, "d")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	cases["directory"] = sub
	link := filepath.Join(dir, "link")
	if err := os.Symlink(write("target", good, 0o600), link); err != nil {
		t.Fatal(err)
	}
	cases["symlink"] = link
	for name, p := range cases {
		if k, err := LoadOrCreateKey(p); err == nil {
			t.Errorf("%s: accepted (%d bytes)", name, len(k))
		}
	}
	// The refused files are left as they were.
	if b, _ := os.ReadFile(filepath.Join(dir, "s")); len(b) != 16 {
		t.Fatal("short key file was modified")
	}
}
