package server

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"

	"github.com/udfhost/udfhost/sandbox"
)

// probeConfig is the worker configuration the start-up probes run with:
// the workers' usual one, but their stderr goes to the log as probe
// results. A probe the filter traps is supposed to print the violation
// line; passed through as it is, it reads like an attack on a fresh
// server.
func (s *Server) probeConfig() sandbox.Config {
	cfg := s.workerBase
	cfg.Stderr = &probeLog{log: s.log}
	return cfg
}

// probeLog writes each line a probe worker prints as one log record marked
// as a probe result.
type probeLog struct {
	log     *slog.Logger
	mu      sync.Mutex
	partial []byte
}

func (p *probeLog) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		p.line(string(p.partial[:i]))
		p.partial = p.partial[i+1:]
	}
	if len(p.partial) > 4096 { // bounded: log what there is
		p.line(string(p.partial))
		p.partial = p.partial[:0]
	}
	return len(b), nil
}

func (p *probeLog) line(l string) {
	if nr, ok := strings.CutPrefix(l, sandbox.SeccompViolationMarker); ok {
		p.log.Info("sandbox probe result: denied by the seccomp filter, as expected", "syscall", nr)
		return
	}
	if l = strings.TrimSpace(l); l != "" {
		p.log.Info("sandbox probe output", "line", l)
	}
}
