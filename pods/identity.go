// Package pods maps functions to pod identities and keeps one worker process
// per identity, so code of one identity never shares a process with another.
package pods

import (
	"fmt"
	"strings"
)

// TrustDomain is the SPIFFE trust domain of pod identities.
const TrustDomain = "udfhost.local"

// Identity is what a worker is single-tenant for: an organisation's compute
// pool in one environment running one artifact.
type Identity struct {
	Org, Env, Pool string
	Digest         string // "sha256:<hex>"
}

// SPIFFEID renders the identity, e.g.
// spiffe://udfhost.local/org/default/env/default/pool/default/artifact/sha256-ab12….
func (id Identity) SPIFFEID() string {
	return fmt.Sprintf("spiffe://%s/org/%s/env/%s/pool/%s/artifact/%s",
		TrustDomain, id.Org, id.Env, id.Pool, strings.Replace(id.Digest, ":", "-", 1))
}

func (id Identity) String() string { return id.SPIFFEID() }
