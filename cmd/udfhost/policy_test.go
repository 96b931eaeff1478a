package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestPolicyCheck: a valid file prints its summary; a bad one prints its
// FILE:LINE:COL line and exits 1, as does one that makes public an
// environment the data dir remembers as private.
func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "org: acme\nenvironments:\n  - {name: pay, visibility: private}\n")
	bad := write("bad.yaml", "org: acme\nenvironments:\n  - {name: pay, visibility: public, colour: red}\n")
	flipped := write("flipped.yaml", "org: acme\nenvironments:\n  - {name: pay, visibility: public}\n")
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "private-environments.json"), []byte(`{"private_environments": ["pay"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, out, errOut string
		fails             bool
	}{
		{good, good + ": org acme: 1 environment (1 private), 1 network, 0 pools, 0 principals\n", "", false},
		{bad, "", bad + `:3:37: environments[0].colour: unknown field "colour"; known fields: name, visibility` + "\n", true},
		{flipped, "", flipped + `:3:29: environments[0].visibility: environment "pay" was served as private (` +
			filepath.Join(data, "private-environments.json") + " remembers it); a private environment can never be made public again\n", true},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		root := newRoot()
		root.SetArgs([]string{"policy", "check", "--data", data, tc.file})
		root.SetOut(&out)
		root.SetErr(&errOut)
		err := root.Execute()
		var ec exitCode
		if tc.fails != (errors.As(err, &ec) && ec == 1) || !tc.fails && err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
		if out.String() != tc.out || errOut.String() != tc.errOut {
			t.Errorf("%s:\nstdout %q\n  want %q\nstderr %q\n  want %q", tc.file, out.String(), tc.out, errOut.String(), tc.errOut)
		}
	}
}
