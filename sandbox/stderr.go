package sandbox

import (
	"bytes"
	"io"
	"strconv"
	"sync"

	"github.com/udfhost/udfhost/sandbox/internal/jail"
)

// SeccompViolationMarker starts the line a worker writes to its stderr
// when its seccomp filter trapped a syscall; the syscall number follows.
const SeccompViolationMarker = jail.SeccompViolationMarker

// stderrWatch passes a worker's stderr on and remembers the syscall number
// a seccomp trap reported, if any.
type stderrWatch struct {
	out     io.Writer
	mu      sync.Mutex
	partial []byte
	syscall int // -1 until reported
}

func newStderrWatch(out io.Writer) *stderrWatch {
	if out == nil {
		out = io.Discard
	}
	return &stderrWatch{out: out, syscall: -1}
}

func (s *stderrWatch) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		line := s.partial[:i]
		if rest, ok := bytes.CutPrefix(line, []byte(SeccompViolationMarker)); ok {
			if nr, err := strconv.Atoi(string(rest)); err == nil {
				s.syscall = nr
			}
		}
		s.partial = s.partial[i+1:]
	}
	if len(s.partial) > 4096 { // a line that long is not ours
		s.partial = s.partial[:0]
	}
	s.mu.Unlock()
	return s.out.Write(p)
}

func (s *stderrWatch) trappedSyscall() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syscall
}
