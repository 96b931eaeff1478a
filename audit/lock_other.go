//go:build !unix

package audit

import "os"

// lock is a no-op where flock does not exist; one writer per file is then
// the caller's duty.
func lock(*os.File) error { return nil }
