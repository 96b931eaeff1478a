package s3store

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	testAccess = "udfhosttestaccess"
	testSecret = "udfhosttestsecret0123456789"
	testBucket = "udfhost-test"
)

// versitygwBinary finds the pinned versitygw that scripts/install-deps.sh
// puts in .cache/bin, or one on PATH. Without it the tests skip, except
// under CI, where `make test` installs it and a missing binary is a
// failure.
func versitygwBinary(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs("../../../.cache/bin/versitygw"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" {
		t.Fatal("versitygw not found in .cache/bin or PATH; `make deps` installs it")
	}
	t.Skip("versitygw not installed (run `make deps`, or scripts/install-deps.sh): skipping the tests against a real S3 server")
	return ""
}

// gateway is a versitygw serving a posix directory on a free local port.
type gateway struct {
	endpoint string
	store    *Store
}

// startGateway starts versitygw on a port picked by listening on :0 and
// closing it (retrying if something else takes the port before versitygw
// binds it), creates the test bucket, and stops the gateway when the test
// ends.
func startGateway(t *testing.T, prefix string) *gateway {
	t.Helper()
	bin := versitygwBinary(t)
	root := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		endpoint, err := tryStart(t, bin, root)
		if err != nil {
			lastErr = err
			continue
		}
		store, err := New(context.Background(), Options{
			Bucket:      testBucket,
			Prefix:      prefix,
			Endpoint:    endpoint,
			Region:      "us-east-1",
			PathStyle:   true,
			Credentials: credentials.NewStaticCredentialsProvider(testAccess, testSecret, ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(testBucket)}); err != nil {
			t.Fatalf("create bucket: %v", err)
		}
		return &gateway{endpoint: endpoint, store: store}
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return nil
}

func tryStart(t *testing.T, bin, root string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	var out bytes.Buffer
	cmd := exec.Command(bin, "--access", testAccess, "--secret", testSecret, "--port", addr, "posix", root)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			// Most likely the port was taken in between: try another.
			return "", fmt.Errorf("versitygw on %s exited (%v): %s", addr, err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			continue
		}
		c.Close()
		// Something answers on the port; make sure it is ours, not a
		// process that took the port before versitygw could.
		select {
		case err := <-exited:
			return "", fmt.Errorf("versitygw on %s exited (%v): %s", addr, err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		t.Cleanup(stop)
		return "http://" + addr, nil
	}
	stop()
	return "", fmt.Errorf("versitygw on %s did not listen within 20s: %s", addr, out.String())
}
