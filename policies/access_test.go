package policies

import (
	"errors"
	"testing"
)

// matrixPolicy has a public environment, two private ones each with its
// own private network, and one principal per role in every environment,
// plus "stranger", with a role only in priv2.
const matrixPolicy = `org: acme
environments:
  - {name: pub, visibility: public}
  - {name: priv, visibility: private}
  - {name: priv2, visibility: private}
networks:
  - {name: priv-link, listen: "127.0.0.1:7445", environments: [priv]}
  - {name: priv2-link, listen: "127.0.0.1:7446", environments: [priv2]}
principals:
  - {name: admin, spiffe_id: "spiffe://acme.example/admin", roles: {"*": admin}}
  - {name: developer, spiffe_id: "spiffe://acme.example/developer", roles: {"*": developer}}
  - {name: invoker, spiffe_id: "spiffe://acme.example/invoker", roles: {"*": invoker}}
  - {name: auditor, spiffe_id: "spiffe://acme.example/auditor", roles: {"*": auditor}}
  - {name: stranger, spiffe_id: "spiffe://acme.example/stranger", roles: {priv2: admin}}
`

var allActions = []Action{ArtifactCreate, ArtifactRead, ArtifactDelete, FunctionCreate, FunctionRead, FunctionDelete, Invoke, QuarantineRelease, AuditRead}

// The expectations, written out rather than derived from the code under
// test.
var (
	// matrix: environment visibility, network ("public", "own": the
	// environment's private network, "other": another private network),
	// resource visibility ("": a create or a list) → reached, or why not.
	matrix = []struct {
		env, network string
		res          Visibility
		reached      bool
		why          string
	}{
		{"public", "public", "", true, ""},
		{"public", "public", Public, true, ""},
		{"public", "public", Private, false, "is public but the resource is private"}, // cannot exist: private is irreversible
		{"public", "other", "", true, ""},
		{"public", "other", Public, true, ""},
		{"public", "other", Private, false, "is public but the resource is private"},
		{"private", "public", "", false, "is private: the public network reaches nothing of it"},
		{"private", "public", Public, false, "is private: the public network reaches nothing of it"},
		{"private", "public", Private, false, "is private: the public network reaches nothing of it"},
		{"private", "own", "", true, ""},
		{"private", "own", Public, true, ""}, // created while it was public: read, update, delete
		{"private", "own", Private, true, ""},
		{"private", "other", "", false, "is private and this network does not serve it"},
		{"private", "other", Public, false, "is private and this network does not serve it"},
		{"private", "other", Private, false, "is private and this network does not serve it"},
	}
	// roles: what each principal may do where the matrix lets it in.
	roles = map[string][]Action{
		"admin":     {ArtifactCreate, ArtifactRead, ArtifactDelete, FunctionCreate, FunctionRead, FunctionDelete, Invoke, QuarantineRelease, AuditRead},
		"developer": {ArtifactCreate, ArtifactRead, ArtifactDelete, FunctionCreate, FunctionRead, FunctionDelete, Invoke},
		"invoker":   {Invoke, FunctionRead},
		"auditor":   {ArtifactRead, FunctionRead, AuditRead},
		"stranger":  nil, // no role in pub or priv: hidden
	}
	// needs: how a role denial names the roles that would do.
	needs = map[Action]string{
		ArtifactCreate: "admin or developer", ArtifactRead: "admin, developer or auditor", ArtifactDelete: "admin or developer",
		FunctionCreate: "admin or developer", FunctionRead: "admin, developer, invoker or auditor", FunctionDelete: "admin or developer",
		Invoke: "admin, developer or invoker", QuarantineRelease: "admin", AuditRead: "admin or auditor",
	}
)

// TestAuthorizeMatrix decides every cell: environment visibility ×
// network × resource visibility × action × role, and checks what each
// denial says.
func TestAuthorizeMatrix(t *testing.T) {
	p, err := Parse("m.yaml", []byte(matrixPolicy), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	envFor := map[string]string{"public": "pub", "private": "priv"}
	networkFor := map[string]string{"public": "public", "own": "priv-link", "other": "priv2-link"}
	cells := 0
	for _, m := range matrix {
		env, network := envFor[m.env], networkFor[m.network]
		for _, pr := range p.Principals {
			allowed := roles[pr.Name]
			for _, action := range allActions {
				cells++
				a := Access{Principal: pr, Network: network, Env: env, Action: action, Resource: m.res}
				err := p.Authorize(a)
				where := func() string {
					return pr.Name + " on " + network + ": " + string(action) + " in " + m.env + " " + env + " (resource " + string(m.res) + ")"
				}
				switch {
				case !m.reached:
					if !errors.Is(err, ErrPermission) {
						t.Errorf("%s = %v, want PERMISSION_DENIED by the network", where(), err)
					} else if msg, want := err.Error(), `permission denied: principal "`+pr.Name+`" on network "`+network+`": environment "`+env+`" `+m.why; msg != want {
						t.Errorf("%s: %q, want %q", where(), msg, want)
					}
				case allowed == nil:
					if !errors.Is(err, ErrHidden) || errors.Is(err, ErrPermission) {
						t.Errorf("%s = %v, want NOT_FOUND (hidden)", where(), err)
					}
				case contains(allowed, action):
					if err != nil {
						t.Errorf("%s = %v, want allowed", where(), err)
					}
				default:
					want := `permission denied: principal "` + pr.Name + `" on network "` + network + `" is ` + pr.Name +
						` in environment "` + env + `"; ` + string(action) + " needs " + needs[action]
					if !errors.Is(err, ErrPermission) || err.Error() != want {
						t.Errorf("%s = %v, want %s", where(), err, want)
					}
				}
			}
		}
	}
	if want := len(matrix) * 5 * len(allActions); cells != want {
		t.Errorf("%d cells, want %d", cells, want)
	}
}

// TestVisible: List shows an environment exactly where the network
// reaches it and the principal has a role in it.
func TestVisible(t *testing.T) {
	p, err := Parse("m.yaml", []byte(matrixPolicy), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{ // network → the environments a "*" principal sees
		"public":     {"pub"},
		"priv-link":  {"pub", "priv"},
		"priv2-link": {"pub", "priv2"},
		"nowhere":    nil,
	}
	for network, envs := range want {
		for _, pr := range p.Principals {
			for _, env := range []string{"pub", "priv", "priv2", "none"} {
				exp := contains(envs, env)
				if pr.Name == "stranger" {
					exp = exp && env == "priv2"
				}
				if got := p.Visible(pr, network, env); got != exp {
					t.Errorf("Visible(%s, %s, %s) = %v, want %v", pr.Name, network, env, got, exp)
				}
			}
		}
	}
	if p.Visible(nil, "public", "pub") {
		t.Error("Visible(nil) = true")
	}
}

// TestAuthorizeEdges: no principal, an unknown network or environment,
// the precedence of a named role over "*", and org-wide actions.
func TestAuthorizeEdges(t *testing.T) {
	p, err := Parse("m.yaml", []byte(matrixPolicy+
		"  - {name: narrowed, spiffe_id: \"spiffe://acme.example/n\", roles: {\"*\": admin, pub: auditor}}\n"+
		"  - {name: partial, spiffe_id: \"spiffe://acme.example/p\", roles: {pub: admin, priv: admin, priv2: admin}}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pr := func(name string) *Principal {
		for _, x := range p.Principals {
			if x.Name == name {
				return x
			}
		}
		t.Fatalf("no principal %s", name)
		return nil
	}
	tests := []struct {
		name string
		a    Access
		want error
		msg  string
	}{
		{"no principal", Access{Network: "public", Env: "pub", Action: FunctionRead}, ErrUnauthenticated, "unauthenticated"},
		{"unknown network", Access{Principal: pr("admin"), Network: "dmz", Env: "pub", Action: FunctionRead}, ErrPermission,
			`permission denied: principal "admin": unknown network "dmz"`},
		{"unknown environment", Access{Principal: pr("admin"), Network: "public", Env: "billing", Action: FunctionRead}, ErrHidden,
			`not found: principal "admin": no environment "billing"`},
		{"no role: hidden", Access{Principal: pr("stranger"), Network: "priv-link", Env: "priv", Action: FunctionRead}, ErrHidden,
			`not found: principal "stranger" has no role in environment "priv"`},
		{"network first, even without a role", Access{Principal: pr("stranger"), Network: "public", Env: "priv", Action: FunctionRead}, ErrPermission,
			`permission denied: principal "stranger" on network "public": environment "priv" is private: the public network reaches nothing of it`},
		{"another private network", Access{Principal: pr("admin"), Network: "priv2-link", Env: "priv", Action: ArtifactRead}, ErrPermission,
			`permission denied: principal "admin" on network "priv2-link": environment "priv" is private and this network does not serve it`},
		{"a named role wins over *", Access{Principal: pr("narrowed"), Network: "public", Env: "pub", Action: ArtifactCreate}, ErrPermission,
			`permission denied: principal "narrowed" on network "public" is auditor in environment "pub"; artifact.create needs admin or developer`},
		{"* elsewhere", Access{Principal: pr("narrowed"), Network: "priv-link", Env: "priv", Action: ArtifactCreate}, nil, ""},
		{"org-wide from a network that misses one", Access{Principal: pr("auditor"), Network: "priv-link", Action: AuditRead}, ErrPermission,
			`permission denied: principal "auditor" on network "priv-link": environment "priv2" is private and this network does not serve it; audit.read of the whole organisation needs a network that reaches every environment`},
		{"org-wide from public", Access{Principal: pr("admin"), Network: "public", Action: AuditRead}, ErrPermission,
			`permission denied: principal "admin" on network "public": environment "priv" is private: the public network reaches nothing of it; audit.read of the whole organisation needs a network that reaches every environment`},
	}
	for _, tc := range tests {
		err := p.Authorize(tc.a)
		if tc.want == nil && err != nil || tc.want != nil && (!errors.Is(err, tc.want) || err.Error() != tc.msg) {
			t.Errorf("%s: Authorize = %v, want %s", tc.name, err, tc.msg)
		}
	}

	// Org-wide needs "*", and a network that reaches every environment.
	one, err := Parse("o.yaml", []byte(`org: acme
environments:
  - {name: pub, visibility: public}
  - {name: priv, visibility: private}
networks:
  - {name: link, listen: "127.0.0.1:1", environments: [priv]}
principals:
  - {name: auditor, spiffe_id: "spiffe://a/auditor", roles: {"*": auditor}}
  - {name: invoker, spiffe_id: "spiffe://a/invoker", roles: {"*": invoker}}
  - {name: partial, spiffe_id: "spiffe://a/partial", roles: {pub: admin, priv: admin}}
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who, network string
		want         string
	}{
		{"auditor", "link", ""},
		{"auditor", "public", `permission denied: principal "auditor" on network "public": environment "priv" is private: the public network reaches nothing of it; audit.read of the whole organisation needs a network that reaches every environment`},
		{"invoker", "link", `permission denied: principal "invoker" on network "link": audit.read of the whole organisation needs admin or auditor in every environment ("*")`},
		{"partial", "link", `permission denied: principal "partial" on network "link": audit.read of the whole organisation needs admin or auditor in every environment ("*")`},
	} {
		var who *Principal
		for _, x := range one.Principals {
			if x.Name == c.who {
				who = x
			}
		}
		err := one.Authorize(Access{Principal: who, Network: c.network, Action: AuditRead})
		if got := errString(err); got != c.want {
			t.Errorf("org-wide audit.read by %s on %s = %s, want %s", c.who, c.network, got, c.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func contains[T comparable](list []T, x T) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}
