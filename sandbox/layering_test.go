package sandbox

import (
	"os/exec"
	"strings"
	"testing"
)

// TestWorkerSideImportsStayBelow keeps the worker-side packages where the
// process boundary puts them: no gRPC or protobuf (the worker speaks only
// wire), nothing of udfhost above the sandbox, and the jail independent
// of the worker that installs it.
func TestWorkerSideImportsStayBelow(t *testing.T) {
	const mod = "github.com/udfhost/udfhost/"
	allowed := map[string][]string{
		"sandbox/internal/wire":   {"internal/udf"},
		"sandbox/internal/jail":   {"internal/udf", "sandbox/internal/wire"},
		"sandbox/internal/worker": {"internal/abi", "internal/udf", "sandbox/internal/jail", "sandbox/internal/wire"},
	}
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.Contains(dep, "grpc") || strings.Contains(dep, "protobuf") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
			own, found := strings.CutPrefix(dep, mod)
			if !found || own == pkg {
				continue
			}
			allowedDep := false
			for _, a := range ok {
				allowedDep = allowedDep || own == a
			}
			if !allowedDep {
				t.Errorf("%s depends on %s; it may use only %v", pkg, own, ok)
			}
		}
	}
}
