//go:build !linux

package audit

import (
	"errors"
	"os"
)

var errNoAppendOnly = errors.New("the append-only inode flag is Linux only")

func setAppendOnly(*os.File) error             { return errNoAppendOnly }
func clearAppendOnly(*os.File) error           { return nil }
func appendOnlySet(*os.File) bool              { return false }
func preallocate(*os.File, int64, int64) error { return errNoAppendOnly }

// ProbeAppendOnly reports whether files in dir can carry the append-only
// flag; not on this system.
func ProbeAppendOnly(string) error { return errNoAppendOnly }
