// Package s3test runs a real S3 server for tests: versitygw, which checks
// SigV4 signatures, serving a posix directory on a free loopback port.
// It imports nothing of udfhost, so any package's tests can use it.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Credentials and bucket every Gateway uses.
const (
	AccessKey = "udfhosttestaccess"
	SecretKey = "udfhosttestsecret0123456789"
	Bucket    = "udfhost-test"
	Region    = "us-east-1"
)

// Binary finds the pinned versitygw that scripts/install-deps.sh puts in
// the repository's .cache/bin, or one on PATH. Without it the test skips,
// except under CI, where `make test` installs it and a missing binary is a
// failure.
func Binary(t testing.TB) string {
	t.Helper()
	if p := repoCache(); p != "" {
		return p
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

// repoCache is .cache/bin/versitygw at the repository root, found from
// this file's path.
func repoCache() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "..", ".cache", "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Gateway is a running versitygw. Stop and Start let a test take the
// store away and bring it back on the same address with the same data.
type Gateway struct {
	// Endpoint is the server's base URL, http://127.0.0.1:PORT.
	Endpoint string
	// Root is the posix directory the objects live in: a test may change
	// an object behind the hosts' backs at Root/Bucket/KEY.
	Root string

	t    testing.TB
	bin  string
	addr string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
	out  *bytes.Buffer
}

// Start runs versitygw on a free port with the test bucket created, and
// stops it when the test ends.
func Start(t testing.TB) *Gateway {
	t.Helper()
	g := &Gateway{t: t, bin: Binary(t), Root: t.TempDir()}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g.addr = l.Addr().String()
		l.Close()
		if lastErr = g.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start versitygw: %v", lastErr)
	}
	t.Cleanup(g.Stop)
	g.Endpoint = "http://" + g.addr
	if _, err := g.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(Bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return g
}

// Restart starts a stopped gateway again on its address, with its data.
func (g *Gateway) Restart() {
	g.t.Helper()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = g.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may linger
	}
	g.t.Fatalf("restart versitygw: %v", err)
}

// Stop kills the gateway; calling it again does nothing.
func (g *Gateway) Stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Kill()
	<-g.done
	g.cmd = nil
}

// Client is an SDK client for the gateway, for a test's own checks (list
// the bucket, replace an object).
func (g *Gateway) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(g.Endpoint),
		Region:       Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		// Plain PUTs, as the host sends them.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Env is the environment a `udfhost serve` child needs to reach the
// gateway through the standard AWS credential chain.
func (g *Gateway) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey, "AWS_REGION=" + Region}
}

func (g *Gateway) start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := &bytes.Buffer{}
	cmd := exec.Command(g.bin, "--access", AccessKey, "--secret", SecretKey, "--port", g.addr, "posix", g.Root)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", g.bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	kill := func() { _ = cmd.Process.Kill(); <-done }
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			// Most likely the port was taken in between.
			return fmt.Errorf("versitygw on %s exited (%v): %s", g.addr, err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			continue
		}
		c.Close()
		// Something answers; make sure it is ours, not a process that
		// took the port first.
		select {
		case err := <-done:
			return fmt.Errorf("versitygw on %s exited (%v): %s", g.addr, err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		g.cmd, g.done, g.out = cmd, done, out
		return nil
	}
	kill()
	return errors.New("versitygw on " + g.addr + " did not listen within 20s: " + out.String())
}
