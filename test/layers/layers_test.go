// Package layers checks the shape of the import graph: which package may
// import which, and that the code that runs inside the jailed worker links
// no gRPC. docs/ARCHITECTURE.md draws the same picture.
package layers

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/udfhost/udfhost/"

// layers lists every package of the module from the bottom up; a package
// may import only packages of lower layers (never its own, so that, say,
// functions cannot import sandbox). A new package must be placed here: the
// test fails for a package it does not know.
var layers = [][]string{
	// Vocabulary and leaf libraries: they import nothing of udfhost.
	{"internal/udf", "internal/names", "internal/atomicfile", "internal/bearer", "internal/cgroup",
		"internal/wasmenc", "proto/udfhost/v1", "guest", "audit", "internal/s3store/s3test"},
	// Formats: the batch layout, upload URLs, the module scanner, the
	// host-worker protocol; the module shapes the scanner's tests and the
	// cost model build; the S3 client.
	{"internal/abi", "presign", "artifacts/internal/wasmscan", "sandbox/internal/wire", "artifacts/internal/wasmtest", "policies",
		"internal/s3store"},
	// The proto edge of the ABI, the store, the native jail, the egress
	// broker (host side: policies and audit below it, the sandbox and the
	// server above).
	{"internal/abi/abipb", "internal/jsonrows", "artifacts", "sandbox/internal/jail", "internal/egress"},
	// What runs inside the jailed worker; function definitions.
	{"sandbox/internal/worker", "functions"},
	// The host's view of workers.
	{"sandbox"},
	// One worker per pod identity.
	{"pods"},
	// The wiring of everything: the gRPC services.
	{"internal/server"},
	// The tools: those that drive a server from outside (bench report,
	// security suite, load generator, benchmark suite) and the scanner's
	// cost model. Prefixes end in "/".
	{"internal/tools/", "artifacts/internal/wasmscan/costmodel"},
	// The command, the examples, the tests and their helpers.
	{"cmd/udfhost", "examples/", "test/", "guest/internal/", "sandbox/internal/testmod"},
}

// workerSide are the packages that run inside the jailed worker process.
// They may depend only on each other and on the standard library and
// wazero: no gRPC or protobuf, which the worker never uses and which would
// only widen what a compromised guest finds in the worker's address space,
// and nothing of the host.
var workerSide = []string{"sandbox/internal/worker", "sandbox/internal/jail", "sandbox/internal/wire", "internal/abi", "internal/udf", "internal/wasmenc"}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json", "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	return pkgs
}

// layerOf returns the layer of a module-relative package path, or -1.
func layerOf(path string) int {
	for i, l := range layers {
		for _, name := range l {
			if name == path || strings.HasSuffix(name, "/") && strings.HasPrefix(path, name) {
				return i
			}
		}
	}
	return -1
}

func TestImportsPointDown(t *testing.T) {
	for path, p := range listPackages(t) {
		l := layerOf(path)
		if l < 0 {
			t.Errorf("package %s is in no layer: add it to layers in this file (and to the picture in docs/ARCHITECTURE.md)", path)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if dl := layerOf(dep); dl >= l {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point to a lower layer", path, l, dep, dl)
			}
		}
	}
}

func TestWorkerSideLinksNoGRPC(t *testing.T) {
	pkgs := listPackages(t)
	for _, path := range workerSide {
		p, ok := pkgs[path]
		if !ok {
			t.Errorf("worker-side package %s does not exist", path)
			continue
		}
		var bad []string
		for _, d := range p.Deps {
			own, inModule := strings.CutPrefix(d, module)
			switch {
			case strings.HasPrefix(d, "google.golang.org/grpc"), strings.HasPrefix(d, "google.golang.org/protobuf"):
				bad = append(bad, d)
			case inModule && !slices.Contains(workerSide, own):
				bad = append(bad, own)
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s runs in the jailed worker but depends on %d packages it must not (gRPC, protobuf, the host's), e.g. %s",
				path, len(bad), strings.Join(bad[:min(3, len(bad))], ", "))
		}
	}
}

func TestLayersNameRealPackages(t *testing.T) {
	pkgs := listPackages(t)
	for _, l := range layers {
		for _, name := range l {
			if strings.HasSuffix(name, "/") {
				continue
			}
			if _, ok := pkgs[name]; !ok {
				t.Errorf("layers names %s, which is not a package of the module", name)
			}
		}
	}
}
