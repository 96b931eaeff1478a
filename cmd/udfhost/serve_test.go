package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/policies"
)

// TestServePolicyFlag: --policy hands the file to the loader, and its
// error stops serve before anything starts, naming the file.
func TestServePolicyFlag(t *testing.T) {
	var asked string
	load := func(path string) (*policies.Policy, error) {
		asked = path
		return nil, errors.New("acme.yaml:3:5: unknown field \"visibilty\"")
	}
	cmd := newServeCmd(&globals{data: t.TempDir()}, load)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--policy", "acme.yaml", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"})
	err := cmd.Execute()
	if asked != "acme.yaml" {
		t.Errorf("loader asked for %q, want acme.yaml", asked)
	}
	if err == nil || err.Error() != `acme.yaml:3:5: unknown field "visibilty"` {
		t.Errorf("serve --policy with a bad file: %v", err)
	}
}

// TestServeStoreFlags: a malformed --store or S3 flag stops serve with one
// line naming the flag, and nothing is created in the data directory.
func TestServeStoreFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--store", "bucket/prefix"}, `--store "bucket/prefix": want s3://BUCKET[/PREFIX]`},
		{[]string{"--store", "s3://No_Such"}, `--store "s3://No_Such": bucket "No_Such" is not an S3 bucket name`},
		{[]string{"--store", "s3://b12", "--s3-endpoint", "localhost:7070"}, `--s3-endpoint "localhost:7070": want http(s)://HOST[:PORT]`},
		{[]string{"--s3-endpoint", "http://127.0.0.1:7070"}, "--s3-endpoint needs --store s3://BUCKET[/PREFIX]"},
		{[]string{"--store", "s3://b12", "--s3-region", "Mars 1"}, `--s3-region "Mars 1"`},
	}
	for _, tc := range tests {
		data := filepath.Join(t.TempDir(), "data")
		cmd := newServeCmd(&globals{data: data}, policies.Load)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, tc.args...))
		err := cmd.Execute()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("serve %v: %v, want one line starting %q", tc.args, err, tc.want)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("serve %v left %s behind (%v)", tc.args, data, err)
		}
	}
}
