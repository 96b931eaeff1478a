package jail

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

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

// ProbeNames lists the canaries, in order. The host (Doctor) asks for
// each by name, in a worker of its own: one the seccomp filter traps ends
// its worker.
func ProbeNames() []string {
	names := make([]string, len(probes))
	for i, p := range probes {
		names[i] = p.name
	}
	return names
}

// RunProbe runs the canary req names, in the worker process, and reports
// whether the jail stopped it.
func RunProbe(req wire.ProbeRequest) (wire.Probe, error) {
	for _, p := range probes {
		if p.name == req.Name {
			detail, err := p.run(req)
			pr := wire.Probe{Name: p.name, Denied: err != nil, Detail: detail}
			if err != nil {
				pr.Detail = err.Error()
			}
			return pr, nil
		}
	}
	return wire.Probe{}, fmt.Errorf("no probe named %q", req.Name)
}
