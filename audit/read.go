package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// ErrStop, returned by the function given to Read, ends the read early
// without an error.
var ErrStop = errors.New("stop reading the audit log")

// Read calls fn with each record of the log whose active file is path
// (its sealed segments first, oldest first) whose seq is at least since,
// in order, reading one line at a time (never the whole log into memory).
// Records before since are skipped by their seq without being decoded,
// and so are whole segments that end before it. An incomplete final line
// (a record being appended right now) ends the read. Read does not verify
// the chain (Verify does; Record.HashOK checks one record); a line that
// does not decode is an error naming it.
func Read(path string, since uint64, fn func(Record) error) error {
	files, err := newLayout(path, "").files()
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	for i, name := range files {
		if i+1 < len(files) {
			// Skip a sealed segment if the next one starts at or before
			// since.
			if first, ok := firstSeq(files[i+1]); ok && first <= since {
				continue
			}
		}
		err := readFile(name, since, fn)
		if errors.Is(err, ErrStop) {
			return nil
		}
		if err != nil {
			if i == len(files)-1 && i > 0 && errors.Is(err, os.ErrNotExist) {
				return nil // rotation between rename and create
			}
			return err
		}
	}
	return nil
}

// firstSeq returns the seq of the first record in the file at path.
func firstSeq(path string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var buf [64]byte
	n, _ := f.Read(buf[:])
	return LineSeq(buf[:n])
}

// readFile is Read over one file; it returns ErrStop if fn did.
func readFile(path string, since uint64, fn func(Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var buf []byte
	for lineNo := 1; ; lineNo++ {
		line, complete, err := readLine(br, buf[:0])
		buf = line
		switch {
		case err != nil:
			return fmt.Errorf("read audit log %s line %d: %w", path, lineNo, err)
		case !complete:
			return nil
		}
		if seq, ok := LineSeq(line); ok && seq < since {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("read audit log %s line %d: %w", path, lineNo, err)
		}
		if r.Seq < since {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

// LineSeq reads the seq a log line starts with (`{"seq":N,`, as the log
// writes every record), without decoding the rest: readers skip records
// before the one they want by it.
func LineSeq(line []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	n, _, ok := bytes.Cut(rest, []byte(","))
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(n), 10, 64)
	return seq, err == nil
}

// HashOK reports whether r's hash is the sha256 of its encoding without
// it: that r is, field for field, the record the log sealed. A reader
// of some records checks each with HashOK and, where they are
// consecutive, that each one's Prev is the Hash before it.
func (r Record) HashOK() bool {
	body, err := r.body()
	if err != nil {
		return false
	}
	_, hash := seal(body)
	return hash == r.Hash
}
