package sandbox

// Layer is one isolation layer of a worker and whether it is active.
type Layer struct {
	Name   string `json:"name"`
	Active bool   `json:"active"`
	Detail string `json:"detail,omitempty"`
}

// applyJail installs the native layers behind wazero, after compilation and
// before any guest code runs. The order matters: namespaces, Landlock and
// rlimits first, then PR_SET_NO_NEW_PRIVS and the seccomp allowlist last,
// since seccomp would refuse the syscalls that set up the others.
//
// Only the wazero layer exists so far; the native jail is the subject of the
// next issue and is reported as inactive rather than assumed.
func applyJail(cfg loadConfig) ([]Layer, error) {
	return []Layer{
		{Name: "wazero", Active: true, Detail: "no WASI fs/net/env, fake clock, memory limit, deadline"},
		{Name: "namespaces", Active: false, Detail: "not implemented yet"},
		{Name: "landlock", Active: false, Detail: "not implemented yet"},
		{Name: "rlimits", Active: false, Detail: "not implemented yet"},
		{Name: "seccomp", Active: false, Detail: "not implemented yet"},
	}, nil
}
