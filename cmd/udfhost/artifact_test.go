package main

import (
	"strings"
	"testing"

	"github.com/udfhost/udfhost/internal/names"
)

// TestDefaultArtifactName: whatever a UDF's file is called, the CLI's
// default artifact name fits the grammar the server checks.
func TestDefaultArtifactName(t *testing.T) {
	for path, want := range map[string]string{
		"bin/examples/add.wasm":         "add",
		"/tmp/My_UDF.v2.wasm":           "My_UDF.v2",
		"straße umlaut (copy).wasm":     "stra--e-umlaut--copy-",
		".hidden.wasm":                  "hidden",
		"---.wasm":                      "",
		strings.Repeat("a", 300) + ".x": strings.Repeat("a", 128),
	} {
		got := defaultArtifactName(path)
		if got != want {
			t.Errorf("defaultArtifactName(%q) = %q, want %q", path, got, want)
		}
		if got != "" {
			if err := names.ArtifactName.Check(got); err != nil {
				t.Errorf("default name %q of %q: %v", got, path, err)
			}
		}
	}
}
