package sandbox

import "github.com/udfhost/udfhost/sandbox/internal/wire"

// FuncSpec says which export to call and how. It travels with every call so
// a worker holds no per-function state and a restarted one needs no replay.
type FuncSpec = wire.FuncSpec

// Layer is one isolation layer of a worker and whether it is active.
type Layer = wire.Layer

// Layer names, in the order they are installed.
const (
	LayerWazero     = wire.LayerWazero
	LayerUserNS     = wire.LayerUserNS
	LayerNamespaces = wire.LayerNamespaces
	LayerLandlock   = wire.LayerLandlock
	LayerRlimits    = wire.LayerRlimits
	LayerNoNewPrivs = wire.LayerNoNewPrivs
	LayerSeccomp    = wire.LayerSeccomp
	LayerCgroups    = wire.LayerCgroups
)

// Probe is one canary a worker tries after its jail is up: Denied says
// whether the jail stopped it.
type Probe = wire.Probe
