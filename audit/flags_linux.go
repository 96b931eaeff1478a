//go:build linux

package audit

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The append-only inode flag (chattr +a): the file can only be opened for
// appending, not truncated, renamed or removed, until it is cleared
// (FS_IOC_SETFLAGS, needing CAP_LINUX_IMMUTABLE). The log sets it on its
// active file and checkpoint file while open, clears it for a moment to
// cut a torn tail or rotate, and clears it at Close (so that a stopped
// log's directory can be copied, moved and removed as usual).

// fsAppendFL is FS_APPEND_FL from linux/fs.h.
const fsAppendFL = 0x00000020

func getFlags(f *os.File) (int, error) {
	v, err := unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	return int(int32(v)), err
}

func setAppendOnly(f *os.File) error {
	if f == nil {
		return nil
	}
	flags, err := getFlags(f)
	if err != nil {
		return fmt.Errorf("read inode flags of %s: %w", f.Name(), err)
	}
	if flags&fsAppendFL != 0 {
		return nil
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, flags|fsAppendFL); err != nil {
		return fmt.Errorf("set the append-only flag on %s: %w", f.Name(), err)
	}
	return nil
}

func clearAppendOnly(f *os.File) error {
	if f == nil {
		return nil
	}
	flags, err := getFlags(f)
	if err != nil || flags&fsAppendFL == 0 {
		return err
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, flags&^fsAppendFL)
}

func appendOnlySet(f *os.File) bool {
	flags, err := getFlags(f)
	return err == nil && flags&fsAppendFL != 0
}

// preallocate allocates n bytes after off without changing the size.
func preallocate(f *os.File, off, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// ProbeAppendOnly reports whether files in dir can carry the append-only
// flag: nil if a probe file there took it (and let it be cleared), else
// why not. `udfhost doctor` prints it.
func ProbeAppendOnly(dir string) error {
	f, err := os.CreateTemp(dir, ".append-only-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := setAppendOnly(f); err != nil {
		return err
	}
	if err := clearAppendOnly(f); err != nil {
		return fmt.Errorf("clear the append-only flag on %s: %w (remove it with chattr -a)", filepath.Base(f.Name()), err)
	}
	return nil
}
