package sandbox

import (
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// cacheFile is one file of a compilation cache handed to a jailed worker:
// its path relative to the cache directory and its size.
type cacheFile struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

// maxCacheBytes bounds what a worker is sent: a pod's cache holds one
// module and its drivers.
const maxCacheBytes = 192 << 20

// readCacheFiles reads the cache directory of one artifact, with
// openCacheFiles' bounds (a compile-only worker sends its cache back).
func readCacheFiles(dir string) ([]cacheFile, [][]byte, error) {
	files, fds, err := openCacheFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	data := make([][]byte, len(fds))
	for i, f := range fds {
		data[i] = make([]byte, files[i].Size)
		if _, rerr := io.ReadFull(f, data[i]); rerr != nil && err == nil {
			err = fmt.Errorf("read compilation cache: %w", rerr)
		}
		f.Close()
	}
	if err != nil {
		return nil, nil, err
	}
	return files, data, nil
}

// maxCacheFDs bounds the files passed to a worker as descriptors (one
// module and its drivers; the worker's RLIMIT_NOFILE is 64).
const maxCacheFDs = 16

// openCacheFiles opens the files of one artifact's cache, to be passed to
// a jailed worker as descriptors: the worker copies them in the kernel
// (copy_file_range) instead of the host reading them and streaming the
// bytes through the socket, and opening them needs none of its rights.
func openCacheFiles(dir string) ([]cacheFile, []*os.File, error) {
	var files []cacheFile
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
		if len(fds) == maxCacheFDs {
			return fmt.Errorf("compilation cache %s holds more than %d files", dir, maxCacheFDs)
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
		if total += st.Size(); total > maxCacheBytes {
			f.Close()
			return fmt.Errorf("compilation cache %s holds more than %d MiB", dir, maxCacheBytes>>20)
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, cacheFile{Name: rel, Size: int(st.Size())})
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

// copyCacheFiles lays the files passed as descriptors out under dir.
func copyCacheFiles(dir string, files []cacheFile, fds []*os.File) error {
	if len(files) != len(fds) {
		return fmt.Errorf("load frame lists %d cache files, %d descriptors came", len(files), len(fds))
	}
	for i, f := range files {
		if !filepath.IsLocal(f.Name) {
			return fmt.Errorf("load frame: bad cache file %q", f.Name)
		}
		path := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("write compilation cache: %w", err)
		}
		dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("write compilation cache: %w", err)
		}
		n, err := io.Copy(dst, io.LimitReader(fds[i], int64(f.Size)+1))
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err == nil && n != int64(f.Size) {
			err = fmt.Errorf("%s has %d bytes, %d announced", f.Name, n, f.Size)
		}
		if err != nil {
			return fmt.Errorf("write compilation cache: %w", err)
		}
	}
	return nil
}

// sendFDs passes fds to the worker ahead of the load frame, as one byte
// with SCM_RIGHTS (the byte is sent even with no descriptors, so the
// worker always reads one message first).
func sendFDs(c net.Conn, fds []*os.File) error {
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

// recvFDs is the worker's side of sendFDs.
func recvFDs(c net.Conn) ([]*os.File, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("host connection is %T, not a unix socket", c)
	}
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4*maxCacheFDs))
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
