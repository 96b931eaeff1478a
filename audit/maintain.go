package audit

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// maintenanceDue reports whether the writer should checkpoint or rotate
// now. It is called by the leader, with l.mu held, after a batch is
// durable.
func (l *Log) maintenanceDue() bool {
	return l.ckptDue ||
		l.durableSeq-l.ckpt.Size >= uint64(l.opts.CheckpointEvery) ||
		l.opts.SegmentSize > 0 && l.size >= l.opts.SegmentSize
}

// maintain checkpoints, and rotates the active file if it is full. It is
// called by the writer (the leader or the ticker) without l.mu. A failure
// fails no record (they are durable already); it is kept for
// CheckpointErr and tried again at the next checkpoint.
func (l *Log) maintain() {
	l.mu.Lock()
	l.ckptDue = false
	l.mu.Unlock()
	var err error
	if l.opts.SegmentSize > 0 && l.size >= l.opts.SegmentSize {
		err = l.rotate()
	} else if !l.ckptBroken {
		err = l.checkpoint(false)
	}
	l.mu.Lock()
	l.ckptErr = err
	l.mu.Unlock()
}

// tick checkpoints records that have waited CheckpointInterval, so that
// a quiet log is covered too.
func (l *Log) tick() {
	defer l.ticker.Done()
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		switch {
		case l.closed:
			l.mu.Unlock()
			return
		case l.durableSeq == l.ckpt.Size:
			l.mu.Unlock()
		case l.flushing:
			l.ckptDue = true // the leader does it after its batch
			l.mu.Unlock()
		default:
			l.flushing = true
			l.mu.Unlock()
			l.maintain()
			l.mu.Lock()
			l.handoff()
		}
	}
}

// checkpoint signs a checkpoint of every durable record and appends it to
// the checkpoint file, fsynced. Only the writer calls it.
func (l *Log) checkpoint(final bool) error {
	size := l.tree.End()
	root := rootOf(l.tree)
	msg, err := note.Sign(&note.Note{Text: checkpointBody(l.origin, size, root, final)}, l.key.signer)
	if err != nil {
		return fmt.Errorf("sign checkpoint: %w", err)
	}
	entry := append(msg, '\n')
	off := l.ckfSize
	n, err := l.ckf.Write(entry)
	if err == nil {
		err = l.ckf.Sync()
	}
	if err != nil {
		if n > 0 {
			if terr := truncateFile(l.ckf, l.ckfSize, !l.opts.NoAppendOnlyFlag); terr != nil {
				// Appending after a partial note would hide every later
				// one; the next Open removes it.
				l.ckptBroken = true
				return fmt.Errorf("write checkpoint %d to %s: %w; removing the partial note failed too (%v): no more checkpoints until the log is reopened", size, l.ly.ckpts, err, terr)
			}
		}
		return fmt.Errorf("write checkpoint %d to %s: %w", size, l.ly.ckpts, err)
	}
	l.ckfSize += int64(n)
	l.reserve()
	l.mu.Lock()
	l.ckpt = Checkpoint{Index: l.ckpt.Index + 1, Offset: off, Origin: l.origin, Size: size, Root: root, Final: final, Note: msg}
	l.mu.Unlock()
	return nil
}

// reserve keeps space allocated after the end of the checkpoint file, so
// that checkpoints, the final one above all, can be written on a full
// disk. Best effort: not every filesystem can.
func (l *Log) reserve() {
	const ahead = 64 << 10
	if l.reserved-l.ckfSize >= 4<<10 {
		return
	}
	if err := preallocate(l.ckf, l.ckfSize, ahead); err == nil {
		l.reserved = l.ckfSize + ahead
	}
}

// rotate seals the active file: a checkpoint that covers it, the file
// renamed to the next segment, and a new active file. Only the writer
// calls it, after a durable batch.
func (l *Log) rotate() error {
	if l.ckptBroken {
		return errors.New("rotate: no checkpoint can be written until the log is reopened")
	}
	if err := l.checkpoint(false); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	flag := !l.opts.NoAppendOnlyFlag && appendOnlySet(l.f)
	if flag {
		clearAppendOnly(l.f) // an append-only file cannot be renamed
	}
	next := l.ly.segment(l.segments + 1)
	if err := os.Rename(l.path, next); err != nil {
		if flag {
			setAppendOnly(l.f)
		}
		return fmt.Errorf("rotate: %w", err)
	}
	if flag {
		setAppendOnly(l.f) // sealed: it stays append-only while the log is open
	}
	l.segments++
	err := syncDir(l.ly.dir)
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err == nil {
		if err = syncDir(l.ly.dir); err != nil {
			f.Close()
		}
	}
	if err != nil {
		// Records must not go into the sealed segment: refuse them until
		// the log is reopened (Open creates the active file).
		l.mu.Lock()
		l.broken = fmt.Errorf("append audit record: %w: rotation sealed %s but could not start %s: %w; stop the server and start it again", ErrBroken, next, l.path, err)
		l.mu.Unlock()
		return l.broken
	}
	old := l.f
	if !l.opts.NoAppendOnlyFlag {
		setAppendOnly(f)
	}
	l.f, l.size = f, 0
	old.Close()
	return nil
}

// CheckpointErr returns why the last checkpoint could not be written, or
// nil. Records are not affected (they are durable before any checkpoint);
// the next checkpoint tries again.
func (l *Log) CheckpointErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ckptErr
}

// AppendOnlyFlag returns nil if the files the Log appends to carry the
// append-only inode flag (FS_APPEND_FL: nobody, root included, can change
// or truncate them without first clearing it, which needs
// CAP_LINUX_IMMUTABLE), else why not (the filesystem does not support it,
// or the process lacks the capability).
func (l *Log) AppendOnlyFlag() error { return l.appendOnly }

// flagSegments sets (or clears) the append-only flag of every sealed
// segment: set while the log is open, cleared at Close.
func (l *Log) flagSegments(set bool) {
	for n := 1; n <= l.segments; n++ {
		f, err := os.Open(l.ly.segment(n))
		if err != nil {
			continue
		}
		if set {
			setAppendOnly(f)
		} else {
			clearAppendOnly(f)
		}
		f.Close()
	}
}
