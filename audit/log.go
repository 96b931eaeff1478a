package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrBroken is wrapped by every Append error after a write or fsync of the
// log failed; the log accepts no more records until it is reopened.
var ErrBroken = errors.New("audit log is broken")

// ErrClosed is returned by Append and Close after Close.
var ErrClosed = errors.New("audit log is closed")

// Options configure a Log. The zero value is ready to use.
type Options struct {
	// Now returns the time stamped on a record; nil means time.Now. It is
	// called once per record with the log's lock held, and its result is
	// stored in UTC.
	Now func() time.Time
}

// Log appends records to an audit log file. Its methods are safe for
// concurrent use.
type Log struct {
	path string
	now  func() time.Time

	mu       sync.Mutex
	idle     sync.Cond // broadcast when flushing becomes false
	f        *os.File
	seq      uint64     // seq of the last record queued
	prev     string     // hash of the last record queued
	queue    []*pending // records waiting for the next write, in seq order
	flushing bool       // a leader is writing; new records must queue
	closed   bool
	broken   error // first write or fsync error, if any

	syncs int // completed write+fsync batches, for tests and benchmarks

	// hookBeforeWrite, if set by a test, is called by the leader with the
	// batch size just before it writes, without the lock held.
	hookBeforeWrite func(batch int)
}

// pending is one record waiting to be written.
type pending struct {
	line []byte
	done chan result // receives exactly one result
}

// result tells a waiting Append either the outcome of the write of its
// record, or (lead) that it must now write the queue itself.
type result struct {
	err  error
	lead bool
}

// Open opens the audit log at path for appending, creating it (mode 0600)
// and its directory if missing. It verifies the existing records first and
// fails, naming the bad record, if they do not verify.
func Open(path string) (*Log, error) {
	return OpenWithOptions(path, Options{})
}

// OpenWithOptions is like Open but with options.
func OpenWithOptions(path string, opts Options) (*Log, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	_, statErr := os.Lstat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if created {
		// Make the new directory entry durable, or a crash could lose
		// the whole file even though its records were fsynced.
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, fmt.Errorf("open audit log %s: %w", path, err)
		}
	}
	sum, err := Verify(path)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit log %s: refusing to append: %w", path, err)
	}
	l := &Log{
		path: path,
		now:  opts.Now,
		f:    f,
		seq:  sum.LastSeq,
		prev: sum.LastHash,
	}
	if l.now == nil {
		l.now = time.Now
	}
	if sum.Records == 0 {
		l.prev = GenesisHash
	}
	l.idle.L = &l.mu
	return l, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// Path returns the path of the log file.
func (l *Log) Path() string { return l.path }

// Append records e and returns the record as written, after it has been
// written and fsynced. An error means the record may not be durable and
// the caller must refuse the action it describes. ctx is only checked
// before the record is queued; after that Append waits for the outcome so
// that its result is always true.
func (l *Log) Append(ctx context.Context, e Event) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("append audit record: %w", err)
	}
	if e.Type == "" {
		return Record{}, errors.New("append audit record: event has no type")
	}

	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return Record{}, fmt.Errorf("append audit record: %w", ErrClosed)
	case l.broken != nil:
		err := brokenError(l.broken)
		l.mu.Unlock()
		return Record{}, err
	}
	line, r, err := encode(newRecord(l.seq+1, l.now(), l.prev, e))
	if err != nil {
		l.mu.Unlock()
		return Record{}, fmt.Errorf("append audit record: %w", err)
	}
	l.seq, l.prev = r.Seq, r.Hash
	p := &pending{line: line, done: make(chan result, 1)}
	l.queue = append(l.queue, p)

	if !l.flushing {
		l.flushing = true
		err = l.lead(p)
	} else {
		l.mu.Unlock()
		res := <-p.done
		if res.lead {
			l.mu.Lock()
			err = l.lead(p)
		} else {
			err = res.err
		}
	}
	if err != nil {
		return Record{}, err
	}
	return r, nil
}

// lead writes and fsyncs everything queued (which includes self) as one
// batch, hands each waiter its result, and passes leadership to the first
// record queued meanwhile, if any. It is called with l.mu held and
// l.flushing set, and returns with l.mu released.
func (l *Log) lead(self *pending) error {
	batch := l.queue
	l.queue = nil
	l.mu.Unlock()

	err := l.write(batch)

	l.mu.Lock()
	if err != nil {
		l.broken = err
		err = brokenError(err)
		// Records queued behind this batch chain onto records that
		// may not be on disk: they fail too.
		for _, p := range l.queue {
			p.done <- result{err: err}
		}
		l.queue = nil
	} else {
		l.syncs++
	}
	for _, p := range batch {
		if p != self {
			p.done <- result{err: err}
		}
	}
	if len(l.queue) > 0 {
		l.queue[0].done <- result{lead: true}
	} else {
		l.flushing = false
		l.idle.Broadcast()
	}
	l.mu.Unlock()
	return err
}

// write writes batch with one write and fsyncs the file. Only the leader
// calls it, so it needs no lock.
func (l *Log) write(batch []*pending) error {
	buf := batch[0].line
	if len(batch) > 1 {
		n := 0
		for _, p := range batch {
			n += len(p.line)
		}
		buf = make([]byte, 0, n)
		for _, p := range batch {
			buf = append(buf, p.line...)
		}
	}
	if h := l.hookBeforeWrite; h != nil {
		h(len(batch))
	}
	if _, err := l.f.Write(buf); err != nil {
		return err
	}
	return l.f.Sync()
}

func brokenError(cause error) error {
	return fmt.Errorf("append audit record: %w: %w", ErrBroken, cause)
}

// Record appends e and discards the written record; see Append.
func (l *Log) Record(ctx context.Context, e Event) error {
	_, err := l.Append(ctx, e)
	return err
}

// Close waits for queued records to be written and closes the file.
// Appends after Close fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("close audit log: %w", ErrClosed)
	}
	l.closed = true
	for l.flushing {
		l.idle.Wait()
	}
	l.mu.Unlock()
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return nil
}
