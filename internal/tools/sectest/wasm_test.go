package sectest

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestGeneratedModulesUnchanged: every generated module is byte for byte
// the one the manifest's cases and expectations were written against
// (testdata/generated.sha256); a change to the encoder or to a generator
// that alters one shows here, not as a case that quietly tests something
// else.
func TestGeneratedModulesUnchanged(t *testing.T) {
	f, err := os.Open("testdata/generated.sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			name, digest, _ := strings.Cut(line, " ")
			want[name] = digest
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for name, gen := range generated {
		b := gen()
		got := fmt.Sprintf("%x %d", sha256.Sum256(b), len(b))
		if want[name] != got {
			t.Errorf("gen:%s is %s, want %q", name, got, want[name])
		}
	}
	if len(want) != len(generated) {
		t.Errorf("%d digests for %d generated modules", len(want), len(generated))
	}
}
