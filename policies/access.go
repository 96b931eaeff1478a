package policies

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Role is what a principal may do in one environment.
type Role string

// Roles, from most to least powerful. See docs/POLICY.md.
const (
	RoleAdmin     Role = "admin"     // everything, including quarantine release and the audit log
	RoleDeveloper Role = "developer" // artifacts and functions: create, read, update, delete; invoke
	RoleInvoker   Role = "invoker"   // invoke; get and list functions
	RoleAuditor   Role = "auditor"   // get and list, and the audit log; never invoke or change
)

// AllEnvironments is the roles key that grants a role in every environment.
const AllEnvironments = "*"

// Principal is a caller the policy knows: by the sha256 of its bearer
// token, or by the SPIFFE ID of its mTLS client certificate.
type Principal struct {
	Name        string
	TokenSHA256 []byte // 32 bytes, or nil
	SPIFFEID    string // or ""
	// Roles maps an environment name, or AllEnvironments, to a role.
	Roles map[string]Role
}

// ReservedPrincipal is the actor of the server's own audit records; no
// principal may have its name.
const ReservedPrincipal = "udfhost"

// PublicNetwork is the name of the network served on --listen.
const PublicNetwork = "public"

// Network is where a request arrives: the public network (the --listen
// address) or a private connection endpoint bound to some private
// environments.
type Network struct {
	Name string
	// Listen is the address of a private network's listener; "" for the
	// public network, which is served on --listen.
	Listen string
	// Environments are the private environments this private network
	// serves.
	Environments []string
	// ClientCAs verify the client certificates of this private
	// network's calls instead of serve --client-ca (client_ca); nil:
	// --client-ca's.
	ClientCAs *x509.CertPool
}

// Public reports whether n is the public network.
func (n *Network) Public() bool { return n.Name == PublicNetwork }

// Action is one kind of thing a call does to an environment's resources.
type Action string

// Actions. Every RPC maps to exactly one.
const (
	ArtifactCreate    Action = "artifact.create"    // CreateUploadURL, CommitUpload
	ArtifactRead      Action = "artifact.read"      // GetArtifact, ListArtifacts
	ArtifactDelete    Action = "artifact.delete"    // DeleteArtifact
	FunctionCreate    Action = "function.create"    // CreateFunction, also replacing one (an update)
	FunctionRead      Action = "function.read"      // GetFunction, ListFunctions
	FunctionDelete    Action = "function.delete"    // DeleteFunction
	Invoke            Action = "invoke"             // Invoke, InvokeStream
	QuarantineRelease Action = "quarantine.release" // ReleaseArtifact
	AuditRead         Action = "audit.read"         // reading the audit log
)

// Access is what one call asks of the policy.
type Access struct {
	Principal *Principal
	Network   string // the name of the network the call arrived on
	Env       string
	Action    Action
	// Resource is the visibility the resource had when it was created
	// (its environment's then; a new resource takes its environment's
	// current one); "" when the call creates one or lists. An update is
	// the Create action with the existing resource's visibility.
	Resource Visibility
}

// Errors of Authenticate and Authorize; the server maps them to
// UNAUTHENTICATED, PERMISSION_DENIED and NOT_FOUND.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrPermission      = errors.New("permission denied")
	// ErrHidden: the principal has no role in the environment, which it
	// must not be able to tell from an environment or name that does not
	// exist; the server answers exactly as for a missing one.
	ErrHidden = errors.New("not found")
)

// Authenticate returns the principal whose token this is. Tokens are
// compared by their sha256, in constant time, against every principal.
func (p *Policy) Authenticate(token string) (*Principal, error) {
	sum := sha256.Sum256([]byte(token))
	var found *Principal
	for _, pr := range p.Principals {
		if len(pr.TokenSHA256) == len(sum) && subtle.ConstantTimeCompare(pr.TokenSHA256, sum[:]) == 1 {
			found = pr
		}
	}
	if found == nil {
		return nil, ErrUnauthenticated
	}
	return found, nil
}

// AuthenticateSPIFFE returns the principal with this SPIFFE ID.
func (p *Policy) AuthenticateSPIFFE(id string) (*Principal, error) {
	for _, pr := range p.Principals {
		if pr.SPIFFEID != "" && pr.SPIFFEID == id {
			return pr, nil
		}
	}
	return nil, ErrUnauthenticated
}

// Authorize decides one call, in this order:
//
//  1. The network (the access matrix, docs/POLICY.md): a private
//     environment is reached only from a private network bound to it; a
//     public one from every network. Refused: ErrPermission naming the
//     network, for every principal and every action, listing included.
//  2. The principal's role in the environment (Principal.Role): none is
//     ErrHidden, which the server must answer exactly as for a name or
//     environment that does not exist (NOT_FOUND, with the message it
//     would give then: the error's own text is for the audit log); an
//     environment the policy does not have is ErrHidden too.
//  3. Whether the role allows the action (Role.Allows): ErrPermission
//     naming the principal, the network, the environment, the role it
//     has and the roles that would do.
//
// An Access with Env "" is org-wide (say AuditRead of the whole log): it
// needs the principal's "*" role, and a network that reaches every
// environment.
func (p *Policy) Authorize(a Access) error {
	if a.Principal == nil {
		return ErrUnauthenticated
	}
	nw, ok := p.Networks[a.Network]
	if !ok {
		return fmt.Errorf("%w: principal %q: unknown network %q", ErrPermission, a.Principal.Name, a.Network)
	}
	if a.Env == "" {
		return p.authorizeOrg(a, nw)
	}
	env, ok := p.Environments[a.Env]
	if !ok {
		return fmt.Errorf("%w: principal %q: no environment %q", ErrHidden, a.Principal.Name, a.Env)
	}
	if err := reach(nw, env, a.Resource); err != nil {
		return fmt.Errorf("%w: principal %q on network %q: %w", ErrPermission, a.Principal.Name, nw.Name, err)
	}
	role, ok := a.Principal.Role(env.Name)
	if !ok {
		return fmt.Errorf("%w: principal %q has no role in environment %q", ErrHidden, a.Principal.Name, env.Name)
	}
	if !role.Allows(a.Action) {
		return fmt.Errorf("%w: principal %q on network %q is %s in environment %q; %s needs %s",
			ErrPermission, a.Principal.Name, nw.Name, role, env.Name, a.Action, rolesFor(a.Action))
	}
	return nil
}

// reach is the access matrix: whether a call on network nw may touch a
// resource of env with visibility res ("" for a create or a list).
func reach(nw *Network, env *Environment, res Visibility) error {
	if env.Visibility == Public {
		if res == Private {
			// Cannot happen: an environment that was ever served private
			// stays private (CheckServed). Refuse rather than guess.
			return fmt.Errorf("environment %q is public but the resource is private", env.Name)
		}
		return nil
	}
	if nw.Public() {
		return fmt.Errorf("environment %q is private: the public network reaches nothing of it", env.Name)
	}
	if !slices.Contains(nw.Environments, env.Name) {
		return fmt.Errorf("environment %q is private and this network does not serve it", env.Name)
	}
	return nil
}

func (p *Policy) authorizeOrg(a Access, nw *Network) error {
	for _, name := range slices.Sorted(maps.Keys(p.Environments)) {
		if err := reach(nw, p.Environments[name], ""); err != nil {
			return fmt.Errorf("%w: principal %q on network %q: %w; %s of the whole organisation needs a network that reaches every environment",
				ErrPermission, a.Principal.Name, nw.Name, err, a.Action)
		}
	}
	role, ok := a.Principal.Roles[AllEnvironments]
	if !ok || !role.Allows(a.Action) {
		return fmt.Errorf("%w: principal %q on network %q: %s of the whole organisation needs %s in every environment (\"*\")",
			ErrPermission, a.Principal.Name, nw.Name, a.Action, rolesFor(a.Action))
	}
	return nil
}

// Role returns the principal's role in env: the one given for env by
// name, else the one for AllEnvironments. A role given by name wins even
// when "*" grants more, so "*" can be narrowed for one environment.
func (pr *Principal) Role(env string) (Role, bool) {
	if r, ok := pr.Roles[env]; ok {
		return r, true
	}
	r, ok := pr.Roles[AllEnvironments]
	return r, ok
}

// roleActions is what each role may do in an environment.
var roleActions = map[Role][]Action{
	RoleAdmin:     {ArtifactCreate, ArtifactRead, ArtifactDelete, FunctionCreate, FunctionRead, FunctionDelete, Invoke, QuarantineRelease, AuditRead},
	RoleDeveloper: {ArtifactCreate, ArtifactRead, ArtifactDelete, FunctionCreate, FunctionRead, FunctionDelete, Invoke},
	RoleInvoker:   {Invoke, FunctionRead},
	RoleAuditor:   {ArtifactRead, FunctionRead, AuditRead},
}

// Allows reports whether role r may do a.
func (r Role) Allows(a Action) bool {
	return slices.Contains(roleActions[r], a)
}

// rolesFor names the roles that allow a, for messages: "admin or developer".
func rolesFor(a Action) string {
	var rs []string
	for _, r := range roleNames {
		if r.Allows(a) {
			rs = append(rs, string(r))
		}
	}
	switch len(rs) {
	case 0:
		return "a role that does not exist"
	case 1:
		return rs[0]
	}
	return strings.Join(rs[:len(rs)-1], ", ") + " or " + rs[len(rs)-1]
}

// Visible reports whether a principal may see anything of env from
// network: what List calls filter by. It is the first two steps of
// Authorize: the network reaches env and the principal has a role there.
func (p *Policy) Visible(pr *Principal, network, env string) bool {
	nw, ok := p.Networks[network]
	e, eok := p.Environments[env]
	if pr == nil || !ok || !eok || reach(nw, e, "") != nil {
		return false
	}
	_, ok = pr.Role(env)
	return ok
}
