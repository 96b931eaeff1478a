package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Probe is one canary the worker tries after its jail is up: Denied says
// whether the jail stopped it.
type Probe struct {
	Name   string `json:"name"`
	Denied bool   `json:"denied"`
	Detail string `json:"detail,omitempty"`
}

// flagProbe asks the worker to run its canary probes (probe.go); the input
// region is a probeRequest as JSON.
const flagProbe = 2

type probeRequest struct {
	// HostPort is a TCP port listening on the host's loopback: the worker
	// must not reach it.
	HostPort int `json:"host_port"`
}

// runProbes runs, inside the jailed worker, what untrusted code that
// escaped wasm would try first. They run as the worker's own Go code, so
// they test the native layers, not wazero.
func runProbes(req probeRequest) []Probe {
	var out []Probe
	add := func(name string, err error, detail string) {
		p := Probe{Name: name, Denied: err != nil, Detail: detail}
		if err != nil {
			p.Detail = err.Error()
		}
		out = append(out, p)
	}
	f, err := os.Open("/etc/passwd")
	if err == nil {
		f.Close()
	}
	add("read /etc/passwd", err, "readable")

	tf, err := os.CreateTemp("/tmp", "udfhost-probe-")
	if err == nil {
		tf.Close()
		os.Remove(tf.Name())
	}
	add("write to /tmp", err, "writable")

	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.Close(fd)
	}
	add("create a socket", err, "created (the network namespace still bounds where it can go)")

	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(req.HostPort)), 500*time.Millisecond)
	if err == nil {
		conn.Close()
	}
	add("connect to the host's loopback", err, "connected")

	ifs, _ := net.Interfaces()
	var up []string
	for _, i := range ifs {
		if i.Flags&net.FlagUp != 0 {
			up = append(up, i.Name)
		}
	}
	var ifErr error
	if len(up) == 0 {
		ifErr = fmt.Errorf("no network interface is up")
	}
	add("see a network interface", ifErr, fmt.Sprintf("up: %v", up))

	err = exec.Command("/bin/true").Run()
	add("execve /bin/true", err, "ran")

	err = unix.PtraceAttach(os.Getppid())
	add("ptrace the parent process", err, "attached")

	entries, _ := os.ReadDir("/proc")
	others := 0
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			others++
		}
	}
	var psErr error
	if others == 0 {
		psErr = fmt.Errorf("no other process visible in /proc")
	}
	add("see other processes", psErr, fmt.Sprintf("%d other processes visible", others))

	lim := unix.Rlimit{Cur: 4096, Max: 4096}
	err = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	if err == nil { // put it back: the probe must not loosen the jail
		restore := unix.Rlimit{Cur: 64, Max: 64}
		unix.Setrlimit(unix.RLIMIT_NOFILE, &restore)
	}
	add("raise an rlimit", err, "raised")
	return out
}

// Report is what Doctor found: the layers a jailed worker reports and what
// its probes could do.
type Report struct {
	Layers  []Layer `json:"layers"`
	Probes  []Probe `json:"probes"`
	StartMS float64 `json:"worker_start_ms"`
}

// tinyModule is the smallest module a worker accepts: one export, f() -> i32.
var tinyModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type: () -> i32
	0x03, 0x02, 0x01, 0x00, // func 0 of type 0
	0x07, 0x05, 0x01, 0x01, 'f', 0x00, 0x00, // export "f"
	0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x00, 0x0b, // body: i32.const 0
}

// Doctor starts a jailed worker (as serve would, with cfg's executable),
// and runs the canary probes inside it.
func Doctor(ctx context.Context, cfg Config) (Report, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Report{}, fmt.Errorf("doctor: listen on loopback: %w", err)
	}
	defer ln.Close()
	cfg.Identity, cfg.Module = "spiffe://udfhost.local/doctor", tinyModule
	cfg.MemoryLimitPages, cfg.MaxInstances = max(cfg.MemoryLimitPages, 16), 1
	w, err := Start(ctx, cfg)
	if err != nil {
		return Report{}, fmt.Errorf("doctor: %w", err)
	}
	defer w.Close(ctx)
	req, _ := json.Marshal(probeRequest{HostPort: ln.Addr().(*net.TCPAddr).Port})
	out, err := w.call(ctx, &FuncSpec{Export: "f", ABI: ABIBatch}, 30*time.Second, req, flagProbe)
	if err != nil {
		return Report{}, fmt.Errorf("doctor: run probes: %w", err)
	}
	var probes []Probe
	if err := json.Unmarshal(out, &probes); err != nil {
		return Report{}, fmt.Errorf("doctor: decode probes: %w", err)
	}
	return Report{Layers: w.Layers(), Probes: probes, StartMS: float64(w.StartDuration().Microseconds()) / 1000}, nil
}
