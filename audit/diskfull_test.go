//go:build linux

package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// diskFullEnv, set to a directory, makes TestDiskFull the child that
// mounts the tiny filesystem there and runs the scenario.
const diskFullEnv = "UDFHOST_AUDIT_TEST_TMPFS"

// TestDiskFull runs a log on a real filesystem that fills up: a 256 KiB
// tmpfs mounted in a private mount namespace of a child process (this test
// binary re-executed), so nothing outside the test sees it. A write that
// does not fit is written short by the kernel and fails with ENOSPC; the
// log must leave no partial bytes, stay verifiable, refuse records while
// the disk is full and take them again once there is space.
func TestDiskFull(t *testing.T) {
	if dir := os.Getenv(diskFullEnv); dir != "" {
		diskFullScenario(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs in a private mount namespace")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFull$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+t.TempDir())
	// Go makes the new namespace's mounts private before exec.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestDiskFull")) {
		t.Fatalf("disk-full scenario: %v\n%s", err, out)
	}
	t.Logf("disk-full scenario:\n%s", out)
}

func diskFullScenario(t *testing.T, dir string) {
	if err := syscall.Mount("udfhost-audit-test", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	path := filepath.Join(dir, "audit", "audit.log")
	// Every record the same length (fixed-width time, one event), so
	// the one that first does not fit is not followed by a shorter one
	// that would.
	n := 0
	l, err := OpenWithOptions(path, Options{Now: func() time.Time {
		n++
		return t0.Add(time.Duration(n)*time.Second + 1)
	}})
	if err != nil {
		t.Fatal(err)
	}
	type write struct{ n, want int }
	var failed []write
	l.hookAfterWrite = func(n, want int, err error) { // one leader at a time
		if err != nil {
			failed = append(failed, write{n, want})
		}
	}
	ctx := context.Background()
	e := testEvent(7)
	acked := 0
	record := func() error {
		err := l.Record(ctx, e)
		if err == nil {
			acked++
		}
		return err
	}
	// A few records first, so that the log's last page is partly used.
	for range 5 {
		if err := record(); err != nil {
			t.Fatal(err)
		}
	}
	filler := filepath.Join(dir, "filler")
	fill(t, filler)

	// Records go into what is left of that page; the first that does
	// not fit is written short and fails.
	for err = record(); err == nil; err = record() {
		if acked > 1000 {
			t.Fatal("the filesystem never filled")
		}
	}
	if !errors.Is(err, ErrBroken) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "the log is intact and takes the next record") {
		t.Fatalf("record on a full disk: err = %v, want ErrBroken, ENOSPC and that the log is intact", err)
	}
	if len(failed) != 1 || failed[0].n == 0 || failed[0].n >= failed[0].want {
		t.Fatalf("failed writes %+v: want one short write, so that partial bytes were written and removed", failed)
	}
	t.Logf("%d records, then a write of %d of %d bytes failed: %v", acked, failed[0].n, failed[0].want, err)
	checkIntact(t, path, acked)

	// While the disk is full, every record is refused, concurrent ones
	// (one batch or several) too, and none leaves anything behind.
	for _, err := range recordConcurrently(l, e, 8) {
		if !errors.Is(err, ErrBroken) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("record while full: err = %v, want ErrBroken and ENOSPC", err)
		}
	}
	checkIntact(t, path, acked)

	// Space comes back: records are taken again, the chain goes on.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, err := range recordConcurrently(l, e, 8) {
		if err != nil {
			t.Fatalf("record once there is space: %v", err)
		}
		acked++
	}
	if err := record(); err != nil {
		t.Fatal(err)
	}
	checkIntact(t, path, acked)

	// A failed write that was rolled back is no error of Close, and the
	// log opens again as it is.
	if err := l.Close(); err != nil {
		t.Fatalf("close after failed writes: %v", err)
	}
	before, _ := os.ReadFile(path)
	l = openTest(t, path)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("reopening an intact log changed it")
	}

	// A torn final line (a crash mid-write) found on a full disk: the
	// repair cannot be recorded, so it is not done; Open says what to
	// do, and repairs and records it once there is space.
	l = openTest(t, path)
	fill(t, filler)
	for l.Record(ctx, e) == nil {
		acked++
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":` + strconv.Itoa(acked+1) + `,"time":"2026-`); err != nil {
		t.Fatalf("write a torn line into the last page: %v", err)
	}
	f.Close()
	torn, _ := os.ReadFile(path)
	_, err = Open(path)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "cannot record the repair") || !strings.Contains(err.Error(), "free space on the disk and start again") {
		t.Fatalf("open with a torn line on a full disk: err = %v, want ENOSPC and what to do", err)
	}
	t.Logf("open with a torn line on a full disk: %v", err)
	if after, _ := os.ReadFile(path); !bytes.Equal(after, torn) {
		t.Fatal("a repair that could not be recorded changed the log")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := openTest(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	checkRepaired(t, path, torn, acked+1)
}

// fill writes path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte("x"), 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return
		}
	}
}

// checkIntact checks that the log holds exactly want records, verifies,
// and has no bytes after its last complete record.
func checkIntact(t *testing.T, path string, want int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Verify(path)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if sum.Records != want || sum.LastSeq != uint64(want) || sum.Size != int64(len(data)) || data[len(data)-1] != '\n' {
		t.Fatalf("log %+v, %d bytes: want exactly %d complete records", sum, len(data), want)
	}
}

// recordConcurrently records e from n goroutines at once and returns their
// errors.
func recordConcurrently(l *Log, e Event, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = l.Record(context.Background(), e) })
	}
	wg.Wait()
	return errs
}
