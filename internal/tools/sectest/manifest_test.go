package sectest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/internal/wasmenc"
)

func corpusDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "test", "hostile")
}

func corpusManifest(t *testing.T) *Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir(), ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCorpusManifest checks the repository's corpus: enough distinct
// behaviours, every artifact's source present, and no source unused.
func TestCorpusManifest(t *testing.T) {
	m := corpusManifest(t)
	if len(m.Cases) < 40 {
		t.Errorf("%d cases, want at least 40", len(m.Cases))
	}
	behaviours := map[string]string{}
	used := map[string]bool{}
	for _, c := range m.Cases {
		if prev, ok := behaviours[c.Behaviour]; ok {
			t.Errorf("cases %s and %s describe the same behaviour", prev, c.Name)
		}
		behaviours[c.Behaviour] = c.Name
		for _, art := range []string{c.Artifact, c.Params["victim"]} {
			if art == "" {
				continue
			}
			src := source(art)
			used[src] = true
			if _, err := os.Stat(filepath.Join(corpusDir(), src)); err != nil && !strings.HasPrefix(src, "gen:") {
				t.Errorf("case %s: no source for %s: %v", c.Name, art, err)
			}
		}
	}
	sources, _ := filepath.Glob(filepath.Join(corpusDir(), "*.wat"))
	gos, _ := filepath.Glob(filepath.Join(corpusDir(), "go", "*"))
	bins, _ := filepath.Glob(filepath.Join(corpusDir(), "fuzz", "*.bin"))
	for _, p := range append(append(sources, gos...), bins...) {
		rel, _ := filepath.Rel(corpusDir(), p)
		if !used[rel] {
			t.Errorf("%s is in the corpus but no case uses it", rel)
		}
	}
	for name := range generated {
		if !used["gen:"+name] {
			t.Errorf("generator %s is unused", name)
		}
	}
}

// source maps a built artifact to the file it is built from.
func source(art string) string {
	switch {
	case strings.HasPrefix(art, "gen:"):
		return art
	case strings.HasSuffix(art, ".bin"):
		return filepath.Join("fuzz", art)
	}
	base := strings.TrimSuffix(art, ".wasm")
	if _, err := os.Stat(filepath.Join(corpusDir(), "go", base)); err == nil {
		return filepath.Join("go", base)
	}
	return base + ".wat"
}

// TestGeneratedModulesAreRejected runs every generated module that a case
// expects refused with a message through the validator the server uses:
// the generator must build what the manifest says it does.
func TestGeneratedModulesAreRejected(t *testing.T) {
	for _, c := range corpusManifest(t).Cases {
		gen, ok := strings.CutPrefix(c.Artifact, "gen:")
		if !ok || len(c.Expect.Message) == 0 {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			_, err := artifacts.Validate(context.Background(), generated[gen](), artifacts.KindUDF, nil, nil)
			if err == nil || !c.Expect.Message.within(err.Error()) {
				t.Errorf("Validate: %v; want an error containing %q", err, c.Expect.Message)
			}
		})
	}
}

// TestTaggedModulesStayValid checks that the per-run tag changes a
// module's digest without changing what it is.
func TestTaggedModulesStayValid(t *testing.T) {
	dir := t.TempDir()
	mod := oneFuncModule([]byte{wasmenc.OpEnd})
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), mod, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := loadModule(dir, "m.wasm", "run1/case/m.wasm/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := loadModule(dir, "m.wasm", "run1/case/m.wasm/b")
	if bytes.Equal(a, b) || !bytes.HasPrefix(a, mod) {
		t.Error("tags do not make distinct modules")
	}
	for _, m := range [][]byte{a, b} {
		info, err := artifacts.Validate(context.Background(), m, artifacts.KindUDF, nil, nil)
		if err != nil || len(info.Exports) != 1 || info.Exports[0].Name != "f" {
			t.Errorf("tagged module: %+v, %v; want valid, exporting f", info, err)
		}
	}
	// Generated modules are sent byte for byte.
	g, _ := loadModule(dir, "gen:bad_magic", "run1/x")
	if !bytes.Equal(g, generated["bad_magic"]()) {
		t.Error("a generated module was altered")
	}
}

func TestParseManifestErrors(t *testing.T) {
	ok := `{"case":"a","behaviour":"b","exercise":"invoke","expect":{"stage":"invoke"},"no_audit":"x"}`
	tests := []struct {
		name, manifest, want string
	}{
		{"valid", `{"cases":[` + ok + `]}`, ""},
		{"unknown field", `{"cases":[{"case":"a","behavior":"b"}]}`, "unknown field"},
		{"duplicate", `{"cases":[` + ok + `,` + ok + `]}`, "used twice"},
		{"unknown exercise", `{"cases":[{"case":"a","behaviour":"b","exercise":"hack","expect":{"stage":"invoke"},"no_audit":"x"}]}`, "unknown exercise"},
		{"unknown stage", `{"cases":[{"case":"a","behaviour":"b","exercise":"invoke","expect":{"stage":"later"},"no_audit":"x"}]}`, "unknown stage"},
		{"no audit decision", `{"cases":[{"case":"a","behaviour":"b","exercise":"invoke","expect":{"stage":"invoke"}}]}`, "exactly one of audit and no_audit"},
		{"both", `{"cases":[{"case":"a","behaviour":"b","exercise":"invoke","expect":{"stage":"invoke"},"no_audit":"x","audit":{"type":"t"}}]}`, "exactly one"},
		{"unknown generator", `{"cases":[{"case":"a","behaviour":"b","exercise":"commit","artifact":"gen:nope","expect":{"stage":"commit"},"no_audit":"x"}]}`, "unknown generator"},
		{"unknown check", `{"cases":[{"case":"a","behaviour":"b","exercise":"values","check":"vibes","expect":{"stage":"contained"},"no_audit":"x"}]}`, "unknown check"},
		{"bad name", `{"cases":[{"case":"A b","behaviour":"b","exercise":"invoke","expect":{"stage":"invoke"},"no_audit":"x"}]}`, "name must match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tc.manifest))
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("ParseManifest: %v; want %q", err, tc.want)
			}
		})
	}
}
