package policies

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
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
}

// Public reports whether n is the public network.
func (n *Network) Public() bool { return n.Name == PublicNetwork }

// Action is one kind of thing a call does to an environment's resources.
type Action string

// Actions. Every RPC maps to exactly one.
const (
	ArtifactCreate    Action = "artifact.create" // CreateUploadURL, CommitUpload
	ArtifactRead      Action = "artifact.read"   // GetArtifact, ListArtifacts
	ArtifactDelete    Action = "artifact.delete"
	FunctionCreate    Action = "function.create"
	FunctionRead      Action = "function.read" // GetFunction, ListFunctions
	FunctionDelete    Action = "function.delete"
	Invoke            Action = "invoke" // Invoke, InvokeStream
	QuarantineRelease Action = "quarantine.release"
	AuditRead         Action = "audit.read"
)

// Access is what one call asks of the policy.
type Access struct {
	Principal *Principal
	Network   string // the name of the network the call arrived on
	Env       string
	Action    Action
	// Resource is the visibility the resource had when it was created;
	// "" when the call creates one or lists.
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

// Authorize decides one call: the access matrix of networks and
// environments first, then the principal's role. Its error wraps
// ErrPermission or ErrHidden with a message naming the principal, the
// network, the environment and the role the call would need.
//
// Until the policy file lands this knows one rule: an admin (in the
// environment or in all) may do everything.
func (p *Policy) Authorize(a Access) error {
	if a.Principal == nil {
		return ErrUnauthenticated
	}
	role, ok := a.Principal.Roles[a.Env]
	if !ok {
		role, ok = a.Principal.Roles[AllEnvironments]
	}
	if !ok {
		return fmt.Errorf("%w: environment %q", ErrHidden, a.Env)
	}
	if role != RoleAdmin {
		return fmt.Errorf("%w: principal %q has role %s in environment %q; %s needs admin", ErrPermission, a.Principal.Name, role, a.Env, a.Action)
	}
	return nil
}

// Visible reports whether a principal may see anything of env from
// network: what List calls filter by.
func (p *Policy) Visible(pr *Principal, network, env string) bool {
	return p.Authorize(Access{Principal: pr, Network: network, Env: env, Action: FunctionRead}) == nil
}
