package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/audit"
)

// maxTailLine bounds one line a Tail reads (the log's own limit is 1 MiB).
const maxTailLine = 2 << 20

// logFollower reads the audit log file for one Tail, from where it
// stopped last: a follower costs a read of what was appended since, not
// a scan of the whole log per poll. It reads only up to a durable seq,
// so every line it reads is complete.
type logFollower struct {
	path string
	f    *os.File
	br   *bufio.Reader
	line []byte
}

func (lf *logFollower) close() {
	if lf.f != nil {
		lf.f.Close()
		lf.f = nil
	}
}

func (lf *logFollower) open() error {
	lf.close()
	f, err := os.Open(lf.path)
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	lf.f, lf.br = f, bufio.NewReaderSize(f, 64<<10)
	return nil
}

// read calls fn with each record from seq next to seq upto, and its line
// (valid only during the call), and returns the seq after the last one
// read. Records before next are skipped by their seq, undecoded. A file
// that ends before upto was replaced (the log rotated): it is opened
// again by its path once; a record missing from it is an error naming
// the seq to tail from.
func (lf *logFollower) read(next, upto uint64, fn func(audit.Record, []byte) error) (uint64, error) {
	reopened := false
	if lf.f == nil {
		if err := lf.open(); err != nil {
			return next, err
		}
		reopened = true
	}
	for next <= upto {
		chunk, err := lf.br.ReadSlice('\n')
		lf.line = append(lf.line, chunk...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull) && len(lf.line) <= maxTailLine:
			continue
		case errors.Is(err, io.EOF) && !reopened:
			lf.line = lf.line[:0]
			if err := lf.open(); err != nil {
				return next, err
			}
			reopened = true
			continue
		case errors.Is(err, io.EOF):
			return next, status.Errorf(codes.Unavailable, "the audit log %s ends before durable record %d", lf.path, upto)
		case err != nil:
			return next, fmt.Errorf("read audit log %s: %w", lf.path, err)
		}
		line := bytes.TrimSuffix(lf.line, []byte("\n"))
		lf.line = lf.line[:0]
		if seq, ok := audit.LineSeq(line); ok && seq < next {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			return next, fmt.Errorf("read audit log %s at record %d: %w", lf.path, next, err)
		}
		if r.Seq < next {
			continue
		}
		if r.Seq > next && next > 1 {
			return next, status.Errorf(codes.FailedPrecondition, "records %d to %d are no longer in %s (rotated out before this tail read them); tail again from since_seq %d", next, r.Seq-1, lf.path, r.Seq)
		}
		next = r.Seq + 1
		if err := fn(r, line); err != nil {
			return next, err
		}
	}
	return next, nil
}
