package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// loadAcme copies examples/policy (the example, unchanged, and
// its token script) to a temporary directory, runs the script and loads
// the file. It returns the policy and the tokens the script wrote.
func loadAcme(t *testing.T) (*Policy, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"acme.yaml", "gen-tokens.sh"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "policy", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("sh", filepath.Join(dir, "gen-tokens.sh")).CombinedOutput(); err != nil {
		t.Fatalf("gen-tokens.sh: %v\n%s", err, out)
	}
	tokens := map[string]string{}
	for _, name := range []string{"ops", "audit"} {
		path := filepath.Join(dir, "tokens", name+".token")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(path)
		tokens[name] = strings.TrimSpace(string(b))
	}
	p, err := Load(filepath.Join(dir, "acme.yaml"))
	if err != nil {
		t.Fatalf("the issue's example does not load: %v", err)
	}
	return p, tokens
}

// TestAcme: the example loads unchanged and means what its
// comments say.
func TestAcme(t *testing.T) {
	p, tokens := loadAcme(t)
	if got, want := p.Summary(), "org acme: 2 environments (1 private), 2 networks, 2 pools, 4 principals"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	if p.Environments["analytics"].Visibility != Public || p.Environments["payments"].Visibility != Private {
		t.Errorf("environments %+v %+v", *p.Environments["analytics"], *p.Environments["payments"])
	}
	// networks: public on --listen; payments-link a private endpoint
	// serving payments.
	if nw := p.Networks["public"]; nw == nil || !nw.Public() || nw.Listen != "" {
		t.Errorf("public network %+v", nw)
	}
	if nw := p.Networks["payments-link"]; nw == nil || nw.Listen != "127.0.0.1:7445" || !slices.Equal(nw.Environments, []string{"payments"}) {
		t.Errorf("payments-link %+v", nw)
	}
	// pools: "unset limits take today's defaults".
	def := *Default().Pools["default/default"]
	want := def
	want.Name, want.Env = "default", "analytics"
	if got, _ := p.Pool("analytics", "default"); got == nil || *got != want {
		t.Errorf("analytics/default %+v, want %+v", got, want)
	}
	want.Name, want.Env, want.MemoryLimitPages, want.BatchDeadline = "secure", "payments", 2048, time.Second
	if got, _ := p.Pool("payments", "secure"); got == nil || *got != want {
		t.Errorf("payments/secure %+v, want %+v", got, want)
	}
	// principals: ops by its token file, ana by a hash, tm-payments by its
	// SPIFFE ID, audit-reader by its token file; only hashes are kept.
	ops, err := p.Authenticate(tokens["ops"])
	if err != nil || ops.Name != "ops" {
		t.Errorf("ops's token: %v, %v", ops, err)
	}
	auditor, err := p.Authenticate(tokens["audit"])
	if err != nil || auditor.Name != "audit-reader" {
		t.Errorf("audit-reader's token: %v, %v", auditor, err)
	}
	tm, err := p.AuthenticateSPIFFE("spiffe://acme.example/ns/flink/sa/taskmanager")
	if err != nil || tm.Name != "tm-payments" || tm.TokenSHA256 != nil {
		t.Errorf("tm-payments: %v, %v", tm, err)
	}
	var ana *Principal
	for _, pr := range p.Principals {
		if pr.Name == "ana" {
			ana = pr
		}
	}
	if ana == nil || hex.EncodeToString(ana.TokenSHA256) != "2c5b03bd0c8704db4b1310cac394dcdb47716459674bce791c5643cfdb15778a" {
		t.Fatalf("ana %+v", ana)
	}
	sum := sha256.Sum256([]byte(tokens["ops"]))
	if !slices.Equal(ops.TokenSHA256, sum[:]) {
		t.Errorf("ops's hash is not its token's sha256")
	}
	if _, err := p.Authenticate("not a token of anyone here at all"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("unknown token: %v", err)
	}
	if _, err := p.AuthenticateSPIFFE("spiffe://acme.example/ns/flink/sa/jobmanager"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("unknown SPIFFE ID: %v", err)
	}

	// roles, from the networks where each one works: ops is admin
	// everywhere; ana a developer in both; tm-payments invokes in
	// payments only; audit-reader reads everything and the audit log but
	// never invokes or changes anything.
	type call struct {
		pr      *Principal
		network string
		env     string
		action  Action
		want    error
	}
	for _, c := range []call{
		{ops, "public", "analytics", QuarantineRelease, nil},
		{ops, "payments-link", "payments", QuarantineRelease, nil},
		{ops, "payments-link", "payments", AuditRead, nil},
		{ops, "payments-link", "", AuditRead, nil},
		{ops, "public", "payments", ArtifactRead, ErrPermission}, // the network, even for an admin
		{ops, "public", "", AuditRead, ErrPermission},            // the whole log holds payments's
		{ana, "public", "analytics", FunctionCreate, nil},
		{ana, "public", "analytics", Invoke, nil},
		{ana, "payments-link", "payments", ArtifactCreate, nil},
		{ana, "payments-link", "payments", QuarantineRelease, ErrPermission},
		{ana, "payments-link", "payments", AuditRead, ErrPermission},
		{ana, "public", "payments", FunctionRead, ErrPermission},
		{tm, "payments-link", "payments", Invoke, nil},
		{tm, "payments-link", "payments", FunctionRead, nil},
		{tm, "payments-link", "payments", ArtifactRead, ErrPermission},
		{tm, "payments-link", "payments", FunctionCreate, ErrPermission},
		{tm, "payments-link", "analytics", Invoke, ErrHidden}, // reachable, but no role there
		{tm, "public", "payments", Invoke, ErrPermission},
		{auditor, "public", "analytics", ArtifactRead, nil},
		{auditor, "public", "analytics", AuditRead, nil},
		{auditor, "payments-link", "payments", FunctionRead, nil},
		{auditor, "payments-link", "", AuditRead, nil},
		{auditor, "public", "analytics", Invoke, ErrPermission},
		{auditor, "payments-link", "payments", ArtifactDelete, ErrPermission},
		{auditor, "payments-link", "payments", QuarantineRelease, ErrPermission},
	} {
		err := p.Authorize(Access{Principal: c.pr, Network: c.network, Env: c.env, Action: c.action, Resource: Public})
		if c.env == "payments" {
			err = p.Authorize(Access{Principal: c.pr, Network: c.network, Env: c.env, Action: c.action, Resource: Private})
		}
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s on %s: %s in %q = %v, want %v", c.pr.Name, c.network, c.action, c.env, err, c.want)
		}
	}
	if err := CheckServed(t.TempDir(), p); err != nil {
		t.Errorf("CheckServed on an empty data dir: %v", err)
	}
}
