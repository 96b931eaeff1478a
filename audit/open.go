package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Open opens the audit log at path for appending, creating it (mode 0600)
// and its directory if missing. It checks the existing log first, as
// VerifyLog does (chain, tree, checkpoints), and fails, naming the bad
// record or checkpoint, if it does not verify, with two exceptions: an
// incomplete final line (no trailing newline, and what is there is the
// start of the record that should come next: a write torn by a crash or a
// full disk) is removed, and the repair is recorded as a
// [TypeAuditRepaired] record saying where and how many bytes; and records
// after the last checkpoint are accepted if that checkpoint is not a final
// one (the tail of an unclean stop: a crash, SIGKILL), which is recorded
// as a [TypeAuditUncovered] record. Records after a final checkpoint (one
// written by Close) were not written by udfhost: Open refuses. Damage
// anywhere else is never cut: Open refuses, and VerifyLog reports it.
// Unless it found such a tail, Open writes a checkpoint before it appends
// anything, so that records it appends are never mistaken for an append
// after the last Close. The Log
// holds an exclusive lock until Close: a second Open fails with
// [ErrInUse].
func Open(path string) (*Log, error) {
	return OpenWithOptions(path, Options{})
}

// OpenWithOptions is like Open but with options.
func OpenWithOptions(path string, opts Options) (*Log, error) {
	l, err := open(path, opts)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	return l, nil
}

func open(path string, opts Options) (_ *Log, err error) {
	ly := newLayout(path, opts.KeyFile)
	if err := os.MkdirAll(ly.dir, 0o700); err != nil {
		return nil, err
	}
	// The checkpoint file carries the writer's lock: it lives as long as
	// the log, while rotation replaces the active file.
	ckf, err := os.OpenFile(ly.ckpts, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	var f *os.File
	defer func() {
		if err != nil {
			// A log that is not open carries no append-only flag.
			clearAppendOnly(ckf)
			ckf.Close()
			if f != nil {
				clearAppendOnly(f)
				f.Close()
			}
		}
	}()
	if err := lock(ckf); err != nil {
		return nil, err
	}
	_, statErr := os.Lstat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
		return nil, err
	}
	if created {
		// Make the new directory entry durable, or a crash could lose
		// the whole file even though its records were fsynced.
		if err := syncDir(ly.dir); err != nil {
			return nil, err
		}
	}

	haveKey, err := keyExists(ly.key)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	var key signerKey
	var v note.Verifier
	if haveKey {
		if key, err = loadKey(ly.key); err != nil {
			return nil, err
		}
		v = key.verifier
	}
	s, err := scanLog(ly, v)
	if err != nil {
		var ce *CheckpointError
		if !haveKey && errors.As(err, &ce) && ce.Index > 0 {
			return nil, fmt.Errorf("refusing to append: the checkpoint file %s holds checkpoints but their key %s is missing: put the key back (or, to start a new log, move the directory aside)", ly.ckpts, ly.key)
		}
		return nil, fmt.Errorf("refusing to append: %w; %s", err, preserve(ly))
	}
	if s.Uncovered > 0 && s.Final {
		ue := &UncoveredError{Records: s.Uncovered, From: s.Covered + 1, To: s.LastSeq, Covered: s.Covered, Final: true}
		return nil, fmt.Errorf("refusing to append: %w; %s", ue, preserve(ly))
	}

	l := &Log{
		path:       path,
		now:        opts.Now,
		host:       strings.ToValidUTF8(opts.Host, "\uFFFD"),
		ly:         ly,
		opts:       opts,
		f:          f,
		ckf:        ckf,
		ckfSize:    s.ckTailAt,
		tree:       s.tree,
		segments:   s.segments,
		seq:        s.LastSeq,
		prev:       s.LastHash,
		size:       s.Summary.Size,
		durableSeq: s.LastSeq,
		stop:       make(chan struct{}),
	}
	if s.Last != nil {
		l.ckpt = *s.Last
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.opts.CheckpointEvery <= 0 {
		l.opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if l.opts.CheckpointInterval <= 0 {
		l.opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if l.opts.SegmentSize == 0 {
		l.opts.SegmentSize = DefaultSegmentSize
	}
	if s.Records == 0 {
		l.prev = GenesisHash
	}
	l.durableRec = l.prev
	l.idle.L = &l.mu

	var ckRemoved int
	if s.ckTail != nil {
		// A checkpoint torn by a crash: it never was one.
		ckRemoved = len(s.ckTail)
		if err := truncateFile(ckf, s.ckTailAt, !opts.NoAppendOnlyFlag); err != nil {
			return nil, fmt.Errorf("remove the incomplete final checkpoint (%d bytes at offset %d of %s): %w", ckRemoved, s.ckTailAt, ly.ckpts, err)
		}
	}
	if !haveKey {
		if l.key, err = createKey(ly.key, keyName(opts.Host)); err != nil {
			return nil, err
		}
	} else {
		l.key = key
	}
	l.origin = l.key.signer.Name()
	if opts.NoAppendOnlyFlag {
		l.appendOnly = errors.New("not asked for (Options.NoAppendOnlyFlag)")
	} else {
		l.appendOnly = setAppendOnly(f)
		if err := setAppendOnly(ckf); l.appendOnly == nil {
			l.appendOnly = err
		}
		l.flagSegments(true)
	}
	l.reserve()

	if s.torn != nil {
		if err := l.truncate(); err != nil {
			return nil, fmt.Errorf("remove the incomplete final line (%d bytes at offset %d): %w", len(s.torn.torn), l.size, err)
		}
	}
	// Records after the last checkpoint, which is not a final one (that
	// was refused above): recorded first and then covered, so that a
	// failure on the way leaves them uncovered and the next Open records
	// them again.
	recordTail := s.Uncovered > 0 && haveKey
	if !recordTail {
		// Open's checkpoint: what follows it was written by this Log,
		// not appended after the last Close.
		if err := l.checkpoint(false); err != nil {
			err = fmt.Errorf("write the opening checkpoint: %w", err)
			if s.torn != nil {
				if rerr := l.restore(s.torn.torn); rerr != nil {
					err = fmt.Errorf("%w; the incomplete final line that was removed could not be put back either (%v)", err, rerr)
				}
			}
			return nil, err
		}
	}
	if s.torn != nil {
		if err := l.repair(s.torn); err != nil {
			return nil, err
		}
	}
	if recordTail || ckRemoved > 0 {
		if err := l.recordUncovered(s, ckRemoved); err != nil {
			return nil, err
		}
	}
	l.ticker.Add(1)
	go l.tick()
	return l, nil
}

// preserve says how to keep a log that fails verification for
// investigation.
func preserve(ly layout) string {
	return fmt.Sprintf("nothing was changed; keep the evidence: copy the directory (cp -a %s %s.evidence), then move it aside (mv %s %s.tampered) so that serve starts a new log, and run `udfhost audit verify` on the copy", ly.dir, ly.dir, ly.dir, ly.dir)
}

// repair records the removal of the torn final line ve names (already
// cut). If the record cannot be written, the removed bytes are put back
// so that the next Open repairs, and records, again.
func (l *Log) repair(ve *VerifyError) error {
	frag, off := ve.torn, l.size
	sum := sha256.Sum256(frag)
	_, err := l.Append(context.Background(), Event{
		Type:     TypeAuditRepaired,
		Actor:    "udfhost",
		Decision: Allow,
		Reason:   "removed an incomplete final line: a write torn by a crash or a full disk; it was never acknowledged",
		Details: map[string]string{
			"offset":        strconv.FormatInt(off, 10),
			"line":          strconv.Itoa(ve.Line),
			"bytes_removed": strconv.Itoa(len(frag)),
			"sha256":        hex.EncodeToString(sum[:]),
		},
	})
	if err == nil {
		return nil
	}
	restoreErr := l.restore(frag)
	if restoreErr != nil {
		return fmt.Errorf("removed an incomplete final line (%d bytes at offset %d, line %d, sha256 %x) but could not record the repair (%w) nor put the bytes back (%v); keep this message, which may be the only record of the repair, free space on the disk and start again", len(frag), off, ve.Line, sum, err, restoreErr)
	}
	return fmt.Errorf("cannot record the repair of an incomplete final line (%d bytes at line %d), so it was left in place: %w; free space on the disk and start again", len(frag), ve.Line, err)
}

// recordUncovered records that Open found records after the last
// checkpoint (now covered by Open's), and checkpoints the record at once.
func (l *Log) recordUncovered(s scan, ckRemoved int) error {
	d := map[string]string{
		"records":         strconv.FormatUint(s.Uncovered, 10),
		"last_checkpoint": strconv.FormatUint(s.Covered, 10),
	}
	if s.Uncovered > 0 {
		d["first_seq"] = strconv.FormatUint(s.Covered+1, 10)
		d["last_seq"] = strconv.FormatUint(s.LastSeq, 10)
	}
	if ckRemoved > 0 {
		d["checkpoint_bytes_removed"] = strconv.Itoa(ckRemoved)
	}
	if _, err := l.Append(context.Background(), Event{
		Type:     TypeAuditUncovered,
		Actor:    "udfhost",
		Decision: Allow,
		Reason:   fmt.Sprintf("%d records were not covered by a signed checkpoint: the log was not closed cleanly (a crash, SIGKILL, power loss), or its checkpoint file was rolled back; they are covered from here on", s.Uncovered),
		Details:  d,
	}); err != nil {
		return fmt.Errorf("record the records not covered by a checkpoint: %w; free space on the disk and start again", err)
	}
	l.mu.Lock()
	for l.flushing {
		l.idle.Wait()
	}
	l.flushing = true
	l.mu.Unlock()
	err := l.checkpoint(false)
	l.mu.Lock()
	l.handoff()
	return err
}
