package s3test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Put sends body to a pre-signed URL with exactly the given headers, the
// way a plain client would, and returns the status and response body.
func Put(t testing.TB, url string, headers map[string]string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		// net/http takes the length from the body, not from a header.
		if k != "Content-Length" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// CurlPut uploads body with `curl -T` and only the given headers; it
// skips the test if curl is not installed and fails it if curl does.
func CurlPut(t testing.TB, url string, headers map[string]string, body []byte) {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	file := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-sS", "--fail-with-body", "-T", file}
	for k, v := range headers {
		args = append(args, "-H", k+": "+v)
	}
	if out, err := exec.Command(curl, append(args, url)...).CombinedOutput(); err != nil {
		t.Fatalf("curl -T: %v\n%s", err, out)
	}
}

// PythonPut uploads body with Python's urllib and only the given headers,
// as a user's script would; it skips the test if python3 is not installed.
func PythonPut(t testing.TB, url string, headers map[string]string, body []byte) {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	hj, err := json.Marshal(headers)
	if err != nil {
		t.Fatal(err)
	}
	const script = `import json, sys, urllib.request
url, headers, body = sys.argv[1], json.loads(sys.argv[2]), sys.stdin.buffer.read()
req = urllib.request.Request(url, data=body, method="PUT", headers=headers)
print(urllib.request.urlopen(req).status)`
	cmd := exec.Command(python, "-c", script, url, string(hj))
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python urllib PUT: %v\n%s", err, out)
	}
}
