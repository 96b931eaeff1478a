package main

import (
	"errors"
	"io"
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
