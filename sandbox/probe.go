package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udfhost/udfhost/internal/cgroup"
	"github.com/udfhost/udfhost/internal/udf"
	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// probe is what untrusted code that escaped wasm would try first. Probes
// run as the worker's own Go code, so they test the native layers, not
// wazero. run returns what the attempt could do and a nil error if it
// succeeded (the jail did not stop it).
type probe struct {
	name string
	run  func(req wire.ProbeRequest) (string, error)
}

var probes = []probe{
	{"read /etc/passwd", func(wire.ProbeRequest) (string, error) {
		f, err := os.Open("/etc/passwd")
		if err == nil {
			f.Close()
		}
		return "readable", err
	}},
	{"write outside the private /tmp", func(wire.ProbeRequest) (string, error) {
		f, err := os.CreateTemp("/var/tmp", "udfhost-probe-")
		if err == nil {
			f.Close()
			os.Remove(f.Name())
		}
		return "created a file in /var/tmp", err
	}},
	{"create a socket", func(wire.ProbeRequest) (string, error) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err == nil {
			unix.Close(fd)
		}
		return "created", err
	}},
	{"connect to the host's loopback", func(req wire.ProbeRequest) (string, error) {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(req.HostPort)), 500*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return "connected", err
	}},
	{"see a network interface", func(wire.ProbeRequest) (string, error) {
		ifs, err := net.Interfaces()
		if err != nil {
			return "", err
		}
		var up []string
		for _, i := range ifs {
			if i.Flags&net.FlagUp != 0 {
				up = append(up, i.Name)
			}
		}
		if len(up) == 0 {
			return "", fmt.Errorf("no network interface is up")
		}
		return fmt.Sprintf("up: %v", up), nil
	}},
	{"execve /bin/true", func(wire.ProbeRequest) (string, error) {
		c := exec.Command("/bin/true")
		// Not /dev/null: Landlock would refuse it before execve is tried.
		c.Stdin, c.Stdout, c.Stderr = os.Stderr, os.Stderr, os.Stderr
		return "ran", c.Run()
	}},
	{"ptrace another process", func(wire.ProbeRequest) (string, error) {
		return "attached to pid 1", unix.PtraceAttach(1)
	}},
	{"see other processes", func(wire.ProbeRequest) (string, error) {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return "", err
		}
		others := 0
		for _, e := range entries {
			if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
				others++
			}
		}
		if others == 0 {
			return "", fmt.Errorf("no other process visible in /proc")
		}
		return fmt.Sprintf("%d other processes visible", others), nil
	}},
	{"raise an rlimit", func(wire.ProbeRequest) (string, error) {
		lim := unix.Rlimit{Cur: 4096, Max: 4096}
		err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
		return "raised RLIMIT_NOFILE to 4096", err
	}},
	{"become root", func(wire.ProbeRequest) (string, error) {
		return "setresuid(0) succeeded", unix.Setresuid(0, 0, 0)
	}},
	{"mount a filesystem", func(wire.ProbeRequest) (string, error) {
		return "mounted a tmpfs", unix.Mount("tmpfs", "/tmp", "tmpfs", 0, "")
	}},
	{"start a process (fork)", func(wire.ProbeRequest) (string, error) {
		pid, _, errno := unix.RawSyscall(unix.SYS_FORK, 0, 0, 0)
		if errno != 0 {
			return "", errno
		}
		if pid == 0 {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
		}
		return "forked", nil
	}},
}

func runProbe(req wire.ProbeRequest) (Probe, error) {
	for _, p := range probes {
		if p.name == req.Name {
			detail, err := p.run(req)
			pr := Probe{Name: p.name, Denied: err != nil, Detail: detail}
			if err != nil {
				pr.Detail = err.Error()
			}
			return pr, nil
		}
	}
	return Probe{}, fmt.Errorf("no probe named %q", req.Name)
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

// Doctor starts jailed workers (as serve would, with cfg's executable,
// ids and strictness) and runs each canary probe inside one of its own: a
// probe the seccomp filter traps ends its worker, which is how it is
// denied.
func Doctor(ctx context.Context, cfg Config) (Report, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Report{}, fmt.Errorf("doctor: listen on loopback: %w", err)
	}
	defer ln.Close()
	cfg.Identity, cfg.Module = "spiffe://udfhost.local/doctor", tinyModule
	cfg.MemoryLimitPages, cfg.MaxInstances = max(cfg.MemoryLimitPages, 16), 1
	if cfg.Limits == (cgroup.Limits{}) {
		cfg.Limits = PodLimits(cfg.MemoryLimitPages, 1)
	}
	rep := Report{Probes: make([]Probe, len(probes))}
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := Start(ctx, cfg)
			if err != nil {
				errs[i] = fmt.Errorf("doctor: %w", err)
				return
			}
			defer w.Close(ctx)
			if i == 0 {
				rep.Layers, rep.StartMS = w.Layers(), float64(w.StartDuration().Microseconds())/1000
			}
			req, _ := json.Marshal(wire.ProbeRequest{HostPort: ln.Addr().(*net.TCPAddr).Port, Name: p.name})
			out, err := w.call(ctx, &FuncSpec{Export: "f", ABI: udf.ABIBatch}, 30*time.Second, req, wire.FlagProbe, nil)
			var ce *CallError
			switch {
			case errors.As(err, &ce) && ce.Violation != nil:
				rep.Probes[i] = Probe{Name: p.name, Denied: true, Detail: "worker killed: " + ce.Violation.Detail}
			case err != nil:
				errs[i] = fmt.Errorf("doctor: probe %q: %w", p.name, err)
			default:
				errs[i] = json.Unmarshal(out, &rep.Probes[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Report{}, err
	}
	return rep, nil
}
