package s3test

import (
	"bytes"
	"io"
	"net/http"
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
