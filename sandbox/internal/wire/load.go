package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// LoadConfig is the first frame's JSON: what the worker runs and under
// which limits. The module bytes follow it in the same frame.
type LoadConfig struct {
	Identity         string `json:"identity"`
	MemoryLimitPages uint32 `json:"memory_limit_pages"`
	MaxInstances     int    `json:"max_instances"`
	ModuleSize       int    `json:"module_size"`
	// CacheDir is the host's compilation cache, used directly only by a
	// worker without namespaces; a jailed worker gets CacheFiles instead,
	// as descriptors sent ahead of the frame (SendFDs).
	CacheDir   string      `json:"cache_dir,omitempty"`
	CacheFiles []CacheFile `json:"cache_files,omitempty"`
	// PreciseInterrupt compiles with WithCloseOnContextDone so a batch past
	// its deadline is stopped inside wasm; otherwise the host kills the
	// worker at the deadline.
	PreciseInterrupt bool `json:"precise_interrupt,omitempty"`
	// MeasureSyscalls skips the seccomp filter and marks the moment it
	// would be installed, for scripts/measure-syscalls.sh.
	MeasureSyscalls bool `json:"measure_syscalls,omitempty"`
	// MaxOutputBytes bounds one batch's result region.
	MaxOutputBytes int64 `json:"max_output_bytes,omitempty"`
	// GoMemoryLimit is the worker's Go memory limit (debug.SetMemoryLimit):
	// its cgroup's memory less the guests' linear memories (outside the Go
	// heap) and compiled code, so the collector works harder before the
	// cgroup would kill the worker. 0: none.
	GoMemoryLimit int64 `json:"go_memory_limit,omitempty"`
	// MaxEgressBody is the largest request body the host accepts in an
	// egress frame; the worker refuses a larger one to its guest (a frame
	// over the host's limit would be a broken protocol). 0: MaxEgressBody.
	MaxEgressBody int `json:"max_egress_body,omitempty"`
	// CompileOnly has the worker compile the module, answer with the
	// compilation cache it produced, and exit: no instance, no guest code.
	CompileOnly bool `json:"compile_only,omitempty"`
}

// EncodeLoad returns the payload of a load frame, in parts: cfg (its
// ModuleSize set to the module's) as JSON, a 0 byte, the module.
func EncodeLoad(cfg LoadConfig, module []byte) [][]byte {
	cfg.ModuleSize = len(module)
	lc, _ := json.Marshal(cfg)
	return [][]byte{lc, {0}, module}
}

// DecodeLoad splits a load frame's payload into its config and the module,
// which aliases p.
func DecodeLoad(p []byte) (LoadConfig, []byte, error) {
	var cfg LoadConfig
	cfgJSON, rest, ok := bytes.Cut(p, []byte{0})
	if !ok {
		return cfg, nil, errors.New("load frame has no module")
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return cfg, nil, fmt.Errorf("decode load config: %w", err)
	}
	if cfg.ModuleSize < 0 || cfg.ModuleSize > len(rest) {
		return cfg, nil, fmt.Errorf("load frame: module size %d, frame holds %d bytes", cfg.ModuleSize, len(rest))
	}
	return cfg, rest[:cfg.ModuleSize], nil
}

// LoadedInfo answers the load frame.
type LoadedInfo struct {
	PID    int     `json:"pid"`
	Layers []Layer `json:"layers"`
	Error  string  `json:"error,omitempty"`
	// ModuleFault says Error is the module's own fault (it does not
	// compile, instantiate or start under its limits), not the worker's.
	ModuleFault bool `json:"module_fault,omitempty"`
	// CacheFiles (compile-only) describe the bytes after the JSON and a 0.
	CacheFiles []CacheFile `json:"cache_files,omitempty"`
	// CacheData are those bytes, one slice a file.
	CacheData [][]byte `json:"-"`
}

// EncodeLoaded returns the payload of a loaded frame, in parts: info as
// JSON, a 0 byte, then info.CacheData.
func EncodeLoaded(info *LoadedInfo) [][]byte {
	msg, _ := json.Marshal(info)
	return append([][]byte{msg, {0}}, info.CacheData...)
}

// DecodeLoaded parses a loaded frame's payload; the cache files' bytes
// alias p. What could be decoded is returned with an error.
func DecodeLoaded(p []byte) (LoadedInfo, error) {
	var info LoadedInfo
	infoJSON, rest, _ := bytes.Cut(p, []byte{0})
	if err := json.Unmarshal(infoJSON, &info); err != nil {
		return info, fmt.Errorf("decode load answer: %w", err)
	}
	for _, f := range info.CacheFiles {
		if f.Size < 0 || f.Size > len(rest) {
			return info, fmt.Errorf("load answer: cache file %q of %d bytes, %d left", f.Name, f.Size, len(rest))
		}
		info.CacheData, rest = append(info.CacheData, rest[:f.Size]), rest[f.Size:]
	}
	return info, nil
}

// Layer is one isolation layer of a worker and whether it is active, as
// the worker reports it (the host adds its cgroup's).
type Layer struct {
	Name   string `json:"name"`
	Active bool   `json:"active"`
	Detail string `json:"detail,omitempty"`
}

// Layer names, in the order they are installed.
const (
	LayerWazero     = "wazero"
	LayerUserNS     = "user_namespace"
	LayerNamespaces = "namespaces"
	LayerLandlock   = "landlock"
	LayerRlimits    = "rlimits"
	LayerNoNewPrivs = "no_new_privs"
	LayerSeccomp    = "seccomp"
	LayerCgroups    = "cgroups"
)

// Probe is the answer to a FlagProbe call: one canary the worker tried
// after its jail was up, and whether the jail stopped it.
type Probe struct {
	Name   string `json:"name"`
	Denied bool   `json:"denied"`
	Detail string `json:"detail,omitempty"`
}

// ProbeRequest is the input region of a FlagProbe call.
type ProbeRequest struct {
	// HostPort is a TCP port listening on the host's loopback: the worker
	// must not reach it.
	HostPort int    `json:"host_port"`
	Name     string `json:"name"` // the probe to run
}
