package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
)

// ErrBroken is wrapped by every Append error whose record could not be
// written or fsynced. The message says whether the log is intact (the
// failed write was rolled back, nothing of it is in the file, and the next
// Append tries again: the log resumes by itself once, say, the disk has
// space again) or not (the rollback failed too; the log then refuses every
// record until it is reopened, which removes the incomplete final line and
// records the repair).
var ErrBroken = errors.New("audit log cannot be written")

// ErrInUse is returned by Open when another Log, in this process or
// another, has the file open for writing.
var ErrInUse = errors.New("audit log is in use by another writer (is another udfhost serve running on this data directory?)")

// ErrClosed is returned by Append and Close after Close.
var ErrClosed = errors.New("audit log is closed")

// Options configure a Log. The zero value is ready to use.
type Options struct {
	// Now returns the time stamped on a record; nil means time.Now. It is
	// called once per record with the log's lock held, and its result is
	// stored in UTC.
	Now func() time.Time
	// Host, if set, is stamped on every record (Record.Host): the stable
	// id of the host writing this log. It also names the checkpoint
	// signer key created at first start, and so the checkpoints' origin
	// (DefaultOrigin when empty).
	Host string
	// KeyFile is the checkpoint signer key; "" means checkpoint.key in
	// the log's directory. It is created (mode 0600) if missing and no
	// checkpoint exists yet.
	KeyFile string
	// CheckpointEvery is how many records at most go uncovered by a
	// checkpoint while records arrive; 0 means DefaultCheckpointEvery.
	CheckpointEvery int
	// CheckpointInterval is how long at most records go uncovered; 0
	// means DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// SegmentSize is the size in bytes past which the active file is
	// sealed (with a checkpoint covering it) and a new one started; 0
	// means DefaultSegmentSize, negative never.
	SegmentSize int64
	// NoAppendOnlyFlag leaves the files' append-only inode flag alone.
	NoAppendOnlyFlag bool
}

// Defaults for Options.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Second
	DefaultSegmentSize        = 256 << 20
)

// Log appends records to an audit log file. Its methods are safe for
// concurrent use.
type Log struct {
	path string
	now  func() time.Time
	host string
	ly   layout
	opts Options

	// Checkpoints. key and origin never change; ckf, ckfSize, reserved,
	// tree, segments and ckptBroken belong to whoever is writing (the
	// leader, the ticker standing in for one, or Close); ckpt, ckptDue
	// and ckptErr are guarded by mu.
	key        signerKey
	origin     string
	ckf        *os.File
	ckfSize    int64
	reserved   int64
	tree       *compact.Range // over every durable record
	segments   int            // sealed segments
	ckpt       Checkpoint     // the last one written
	ckptDue    bool           // the ticker asks the next leader for one
	ckptErr    error          // why the last checkpoint failed, if it did
	ckptBroken bool           // a failed checkpoint could not be removed
	appendOnly error          // why the append-only flag is not set, or nil
	stop       chan struct{}
	ticker     sync.WaitGroup

	mu       sync.Mutex
	idle     sync.Cond // broadcast when flushing becomes false
	f        *os.File
	seq      uint64     // seq of the last record queued
	prev     string     // hash of the last record queued
	queue    []*pending // records waiting for the next write, in seq order
	flushing bool       // a leader is writing; new records must queue
	closed   bool
	broken   error // set when a failed write could not be rolled back

	// The last durable record and the file size after it: what a failed
	// write is rolled back to. Only the leader changes them (size without
	// the lock, the others with it).
	size       int64
	durableSeq uint64
	durableRec string // hash

	syncs int // completed write+fsync batches, for tests and benchmarks

	// hookBeforeWrite, if set by a test, is called by the leader with the
	// batch size just before it writes, without the lock held.
	hookBeforeWrite func(batch int)
	// hookAfterWrite, if set by a test, is called by the leader with the
	// bytes the write took and its error, without the lock held.
	hookAfterWrite func(n, want int, err error)
}

// pending is one record waiting to be written.
type pending struct {
	line []byte
	leaf []byte // RFC 6962 leaf hash of line
	seq  uint64
	hash string
	done chan result // receives exactly one result
}

// result tells a waiting Append either the outcome of the write of its
// record, or (lead) that it must now write the queue itself.
type result struct {
	err  error
	lead bool
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

// DurableSeq returns the seq of the last record written and fsynced (0
// for an empty log). A reader of the file that stops there (Read) sees
// only records Append has acknowledged, never one of a write that is
// still under way or about to be rolled back.
func (l *Log) DurableSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durableSeq
}

// Append records e and returns the record as written, after it has been
// written and fsynced. An error means the record is not in the log and the
// caller must refuse the action it describes (fail closed). ctx is only
// checked before the record is queued; after that Append waits for the
// outcome so that its result is always true.
func (l *Log) Append(ctx context.Context, e Event) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("append audit record: %w", err)
	}
	if e.Type == "" {
		return Record{}, errors.New("append audit record: event has no type")
	}

	// Everything but seq, time and prev is encoded before the lock: the
	// chain makes sealing serial, the rest need not be.
	r := newRecord(0, time.Time{}, "", l.host, e)
	mid, err := middleJSON(r)
	if err != nil {
		return Record{}, fmt.Errorf("append audit record: %w", err)
	}

	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return Record{}, fmt.Errorf("append audit record: %w", ErrClosed)
	case l.broken != nil:
		err := l.broken
		l.mu.Unlock()
		return Record{}, err
	}
	r.Seq, r.Time, r.Prev = l.seq+1, l.now().UTC(), l.prev
	line, err := sealParts(&r, mid)
	if err != nil {
		l.mu.Unlock()
		return Record{}, fmt.Errorf("append audit record: %w", err)
	}
	l.seq, l.prev = r.Seq, r.Hash
	// The leaf hash too, so that the leader's tree update after the
	// fsync is cheap.
	p := &pending{line: line, leaf: leafHash(line[:len(line)-1]), seq: r.Seq, hash: r.Hash, done: make(chan result, 1)}
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
		if errors.Is(err, errNotIntact) {
			l.broken = err
		}
		// Records queued behind this batch chain onto records that are
		// not on disk: they fail too, and the next record chains onto
		// the last durable one.
		for _, p := range l.queue {
			p.done <- result{err: err}
		}
		l.queue = nil
		l.seq, l.prev = l.durableSeq, l.durableRec
	} else {
		l.syncs++
		last := batch[len(batch)-1]
		l.durableSeq, l.durableRec = last.seq, last.hash
	}
	for _, p := range batch {
		if p != self {
			p.done <- result{err: err}
		}
	}
	if err == nil && l.maintenanceDue() {
		l.mu.Unlock()
		l.maintain()
		l.mu.Lock()
	}
	l.handoff()
	return err
}

// handoff ends a turn of writing: it passes it to the first record queued
// meanwhile, if any. It is called with l.mu held and releases it.
func (l *Log) handoff() {
	if len(l.queue) > 0 {
		l.queue[0].done <- result{lead: true}
	} else {
		l.flushing = false
		l.idle.Broadcast()
	}
	l.mu.Unlock()
}

// errNotIntact marks a failed write that could not be rolled back.
var errNotIntact = errors.New("the log is not intact")

// write writes batch with one write and fsyncs the file. If either fails
// it truncates the file back to the end of the last durable record, so
// that no partial record stays in the log, and fsyncs that. Only the
// leader calls it, so it needs no lock.
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
	n, err := l.f.Write(buf)
	if h := l.hookAfterWrite; h != nil {
		h(n, len(buf), err)
	}
	what := "write"
	if err == nil {
		what = "fsync"
		err = l.f.Sync()
	}
	if err == nil {
		l.size += int64(n)
		for _, p := range batch {
			l.tree.Append(p.leaf, nil)
		}
		return nil
	}
	records := fmt.Sprintf("%d record(s) from seq %d", len(batch), batch[0].seq)
	if what == "write" && n == 0 {
		// A write(2) that fails has written nothing.
		return fmt.Errorf("append audit record: %w: %s %s: %w (nothing was written; the log is intact and takes the next record when the write succeeds)", ErrBroken, what, records, err)
	}
	if rbErr := l.truncate(); rbErr != nil {
		return fmt.Errorf("append audit record: %w: %s %s: %w; removing the %d bytes written at offset %d failed too (%v), so %w: it takes no more records; stop the server and start it again once the disk works (Open removes an incomplete final line and records the repair)", ErrBroken, what, records, err, n, l.size, rbErr, errNotIntact)
	}
	return fmt.Errorf("append audit record: %w: %s %s: %w (the %d bytes written were removed; the log is intact and takes the next record when the write succeeds)", ErrBroken, what, records, err, n)
}

// truncate cuts the file back to the end of the last durable record and
// fsyncs it.
func (l *Log) truncate() error {
	return truncateFile(l.f, l.size, !l.opts.NoAppendOnlyFlag)
}

// truncateFile cuts f to size and fsyncs it, clearing its append-only flag
// for the while (truncate is refused while it is set) if flag.
func truncateFile(f *os.File, size int64, flag bool) error {
	if flag && appendOnlySet(f) {
		clearAppendOnly(f)
		defer setAppendOnly(f)
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// restore puts back bytes that repair removed from the end of the file.
func (l *Log) restore(frag []byte) error {
	if err := l.truncate(); err != nil {
		return err
	}
	if _, err := l.f.Write(frag); err != nil {
		return err
	}
	return l.f.Sync()
}

// Record appends e and discards the written record; see Append.
func (l *Log) Record(ctx context.Context, e Event) error {
	_, err := l.Append(ctx, e)
	return err
}

// Close waits for queued records to be written, writes the final
// checkpoint (which covers every record and says the log was closed
// cleanly) and closes the files. Appends after Close fail with ErrClosed.
// A failed write that was rolled back is no error of Close: the log is
// intact. If one could not be rolled back, Close reports it, and writes
// an ordinary checkpoint instead: the file may hold records of the failed
// write after it, which the next Open then accepts as the tail of an
// unclean stop. A final checkpoint that cannot be written is an error.
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
	broken := l.broken
	l.mu.Unlock()
	close(l.stop)
	l.ticker.Wait()

	var ckErr error
	if !l.ckptBroken {
		ckErr = l.checkpoint(broken == nil)
	}
	if !l.opts.NoAppendOnlyFlag {
		clearAppendOnly(l.f)
		clearAppendOnly(l.ckf)
		l.flagSegments(false)
	}
	err := l.f.Close()
	l.ckf.Close()
	if broken != nil {
		return fmt.Errorf("close audit log: %w", broken)
	}
	if ckErr != nil {
		return fmt.Errorf("close audit log: write the final checkpoint: %w (the next start accepts the records after the last checkpoint as the tail of an unclean stop, and records that it did)", ckErr)
	}
	if err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return nil
}
