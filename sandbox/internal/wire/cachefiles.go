package wire

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// CacheFile is one file of a compilation cache crossing the socket: its
// path relative to the cache directory and its size.
type CacheFile struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

// MaxCacheBytes bounds the compilation cache either side sends: a pod's
// cache holds one module and its drivers.
const MaxCacheBytes = 192 << 20

// MaxCacheFDs bounds the files passed to a worker as descriptors (one
// module and its drivers; the worker's RLIMIT_NOFILE is 64).
const MaxCacheFDs = 16

// OpenCacheFiles opens the files of one artifact's cache, within
// MaxCacheFDs and MaxCacheBytes. The host passes them to a jailed worker
// as descriptors: the worker copies them in the kernel (copy_file_range)
// instead of the host reading them and streaming the bytes through the
// socket, and opening them needs none of its rights. A compile-only
// worker reads its own cache back through it.
func OpenCacheFiles(dir string) ([]CacheFile, []*os.File, error) {
	var files []CacheFile
	var fds []*os.File
	total := int64(0)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && path == dir {
				return filepath.SkipDir
			}
			return err
		}
		if !d.Type().IsRegular() || strings.HasSuffix(path, ".tmp") {
			return nil
		}
		if len(fds) == MaxCacheFDs {
			return fmt.Errorf("compilation cache %s holds more than %d files", dir, MaxCacheFDs)
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		if total += st.Size(); total > MaxCacheBytes {
			f.Close()
			return fmt.Errorf("compilation cache %s holds more than %d MiB", dir, MaxCacheBytes>>20)
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, CacheFile{Name: rel, Size: int(st.Size())})
		fds = append(fds, f)
		return nil
	})
	if err != nil {
		for _, f := range fds {
			f.Close()
		}
		return nil, nil, fmt.Errorf("open compilation cache: %w", err)
	}
	return files, fds, nil
}

// SendFDs passes fds to the worker ahead of the load frame, as one byte
// with SCM_RIGHTS (the byte is sent even with no descriptors, so the
// worker always reads one message first).
func SendFDs(c net.Conn, fds []*os.File) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("worker connection is %T, not a unix socket", c)
	}
	var oob []byte
	if len(fds) > 0 {
		ints := make([]int, len(fds))
		for i, f := range fds {
			ints[i] = int(f.Fd())
		}
		oob = unix.UnixRights(ints...)
	}
	_, _, err := uc.WriteMsgUnix([]byte{0}, oob, nil)
	return err
}

// RecvFDs is the worker's side of SendFDs.
func RecvFDs(c net.Conn) ([]*os.File, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("host connection is %T, not a unix socket", c)
	}
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4*MaxCacheFDs))
	_, oobn, _, _, err := uc.ReadMsgUnix(b[:], oob)
	if err != nil {
		return nil, fmt.Errorf("receive cache descriptors: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive cache descriptors: %w", err)
	}
	var fds []*os.File
	for _, m := range msgs {
		ints, err := unix.ParseUnixRights(&m)
		if err != nil {
			return nil, fmt.Errorf("receive cache descriptors: %w", err)
		}
		for _, fd := range ints {
			fds = append(fds, os.NewFile(uintptr(fd), "cache"))
		}
	}
	return fds, nil
}
