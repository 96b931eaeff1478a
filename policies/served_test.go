package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServed: once an environment has been served as private, no later
// policy may make it public, whether the file was edited, the environment
// dropped and listed again, or the embedded default used instead.
func TestServed(t *testing.T) {
	parse := func(t *testing.T, src string) *Policy {
		t.Helper()
		p, err := Parse("p.yaml", []byte(src), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const served = "org: acme\nenvironments:\n  - name: pub\n    visibility: public\n  - name: pay\n    visibility: private\n"
	tests := []struct {
		name string
		next string // the file served after served's
		want string
	}{
		{"unchanged", served, ""},
		{"made public", "org: acme\nenvironments:\n  - name: pub\n    visibility: public\n  - name: pay\n    visibility: public\n",
			`p.yaml:6:17: environments[1].visibility: environment "pay" was served as private (DATA/private-environments.json remembers it); a private environment can never be made public again`},
		{"moved and made public", "org: acme\nenvironments:\n  - {name: pay, visibility: public}\n",
			`p.yaml:3:29: environments[0].visibility: environment "pay" was served as private (DATA/private-environments.json remembers it); a private environment can never be made public again`},
		{"dropped", "org: acme\nenvironments:\n  - name: pub\n    visibility: public\n", ""},
		{"public made private", "org: acme\nenvironments:\n  - name: pub\n    visibility: private\n  - name: pay\n    visibility: private\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			first := parse(t, served)
			if err := CheckServed(data, first); err != nil {
				t.Fatalf("first start: %v", err)
			}
			if err := RecordServed(data, first); err != nil {
				t.Fatal(err)
			}
			next := parse(t, tc.next)
			err := CheckServed(data, next)
			if got := strings.ReplaceAll(errString(err), data, "DATA"); got != tc.want {
				t.Errorf("CheckServed:\n got %s\nwant %s", got, tc.want)
			}
			if err != nil {
				return
			}
			// Served: recorded, and a drop forgets nothing.
			if err := RecordServed(data, next); err != nil {
				t.Fatal(err)
			}
			again := parse(t, "org: acme\nenvironments:\n  - name: pay\n    visibility: public\n")
			if err := CheckServed(data, again); err == nil {
				t.Errorf("pay made public after %s: no error", tc.name)
			}
		})
	}
}

// TestServedRecord: the record's content, written only when it grows; a
// record that cannot be read refuses the start; the embedded default is
// refused too when it would make a remembered environment public.
func TestServedRecord(t *testing.T) {
	data := t.TempDir()
	path := filepath.Join(data, ServedFile)
	if err := RecordServed(data, Default()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("no private environment, yet %s: %v", path, err)
	}
	p, err := Parse("p.yaml", []byte("org: acme\nenvironments:\n  - {name: b, visibility: private}\n  - {name: default, visibility: private}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := RecordServed(data, p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if want := "{\n  \"private_environments\": [\n    \"b\",\n    \"default\"\n  ]\n}\n"; err != nil || string(b) != want {
		t.Errorf("record %q, %v; want %q", b, err, want)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v", fi.Mode().Perm())
	}
	os.Chtimes(path, fi.ModTime().Add(-1e9), fi.ModTime().Add(-1e9))
	before, _ := os.Stat(path)
	if err := RecordServed(data, p); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(path); !after.ModTime().Equal(before.ModTime()) {
		t.Error("the record was written again with nothing new")
	}
	err = CheckServed(data, Default())
	want := `policy: environment "default" was served as private (` + path + ` remembers it); a private environment can never be made public again`
	if errString(err) != want {
		t.Errorf("CheckServed(Default()) = %v, want %s", err, want)
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if err := CheckServed(data, p); err == nil || !strings.Contains(err.Error(), "do not delete it") {
		t.Errorf("a corrupt record: %v", err)
	}
	if err := RecordServed(data, p); err == nil {
		t.Error("RecordServed over a corrupt record: no error")
	}
}
