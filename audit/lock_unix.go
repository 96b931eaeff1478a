//go:build unix

package audit

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lock takes an exclusive flock on f for as long as f is open, so that a
// second writer (another serve on the same data directory) is refused
// instead of interleaving records or repairing a line being written.
func lock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return ErrInUse
	default:
		return fmt.Errorf("lock: %w", err)
	}
}
