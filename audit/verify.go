package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// Summary describes a log that verified. For an empty log Records and
// LastSeq are 0, LastHash is "" and the times are zero.
type Summary struct {
	Records   int       // number of records
	LastSeq   uint64    // seq of the last record
	LastHash  string    // hash of the last record
	FirstTime time.Time // time of the first record
	LastTime  time.Time // time of the last record
	Size      int64     // bytes of the records in the active file, newlines included
}

// VerifyError reports the first record of a log that does not verify.
// Line is its 1-based line number and Seq the sequence number it should
// have had.
type VerifyError struct {
	Line   int
	Seq    uint64
	Offset int64 // byte offset of the start of the line
	Reason string
	// File is the sealed segment holding the record, or "" for the
	// active file.
	File string

	// torn holds the final line if it is an incomplete record (see
	// tornTail), which Open may remove.
	torn []byte
}

// Error returns a message like "record 17 (line 17): hash mismatch: …".
func (e *VerifyError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("record %d (%s line %d): %s", e.Seq, e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("record %d (line %d): %s", e.Seq, e.Line, e.Reason)
}

// Verify reads the log whose active file is path, its sealed segments
// (rotation) first, and checks every record and the hash chain between
// them, as described in the package documentation. It checks the chain
// only: [VerifyLog] checks the Merkle tree and the signed checkpoints too.
// A chain failure is returned as a *VerifyError naming the first bad
// record, together with the Summary of the records before it. A missing
// log is an error; an empty file verifies with 0 records. Verifying a log
// that is being appended to may report its last line as incomplete.
func Verify(path string) (Summary, error) {
	s, err := scanChain(newLayout(path, ""), nil)
	return s, err
}

// scanChain walks every file of the log in order, checking the chain, and
// calls fn with each record's line (without its newline). The Summary's
// Size is that of the active file. A *VerifyError is returned as is.
func scanChain(ly layout, fn func(line []byte)) (Summary, error) {
	files, err := ly.files()
	if err != nil {
		return Summary{}, fmt.Errorf("verify audit log %s: %w", ly.active, err)
	}
	return scanChainFiles(files, fn, nil)
}

// chain is the state carried from one record to the next.
type chain struct {
	sum  Summary
	prev string    // hash the next record's prev must equal
	h    hash.Hash // reused by fastNext
}

func newChain() *chain { return &chain{prev: GenesisHash} }

func verifyStream(r io.Reader) (Summary, error) {
	c := newChain()
	err := c.walk(r, nil)
	return c.sum, err
}

// walk checks the records of one file, continuing the chain c, and calls
// fn (if not nil) with each line that verifies, without its newline.
func (c *chain) walk(r io.Reader, fn func(line []byte)) error {
	br := bufio.NewReaderSize(r, 256<<10)
	var buf []byte
	for lineNo := 1; ; lineNo++ {
		line, complete, err := readLine(br, buf[:0])
		buf = line
		switch {
		case errors.Is(err, errLineTooLong):
			return c.fail(lineNo, "line is longer than %d bytes", maxLineLen)
		case err != nil:
			return fmt.Errorf("read line %d: %w", lineNo, err)
		case !complete && len(line) == 0:
			return nil // clean end of file
		case !complete && c.tornTail(line):
			ve := c.fail(lineNo, "final line has no trailing newline: an incomplete record (%d bytes), a write torn by a crash or a full disk; `udfhost serve` removes it when it opens the log and records the repair", len(line))
			ve.torn = bytes.Clone(line)
			return ve
		case !complete:
			return c.fail(lineNo, "final line has no trailing newline and is not the start of record %d: damaged", c.sum.LastSeq+1)
		}
		if ve := c.next(lineNo, line); ve != nil {
			return ve
		}
		if fn != nil {
			fn(line)
		}
		c.sum.Size += int64(len(line)) + 1
	}
}

func (c *chain) fail(lineNo int, format string, args ...any) *VerifyError {
	return &VerifyError{Line: lineNo, Seq: c.sum.LastSeq + 1, Offset: c.sum.Size, Reason: fmt.Sprintf(format, args...)}
}

// tornTail reports whether frag, a final line without its newline, can be
// what a write torn short left of the next record: a prefix of a line
// that starts with the next seq and chains onto the last record. Such a
// record was never acknowledged (Append returns only after the newline is
// fsynced). Anything else at the end (wrong seq, bytes after the hash, a
// complete record whose hash does not match) is damage, not a torn write.
func (c *chain) tornTail(frag []byte) bool {
	start := fmt.Appendf(nil, `{"seq":%d,"time":"`, c.sum.LastSeq+1)
	if len(frag) <= len(start) {
		return bytes.HasPrefix(start, frag)
	}
	if !bytes.HasPrefix(frag, start) {
		return false
	}
	// The line ends in `"prev":"<prev>","hash":"<64 hex>"}`. If the
	// fragment reaches the prev field, what follows must be a prefix of
	// the hash field.
	prev := `,"prev":"` + c.prev + `"`
	i := bytes.LastIndex(frag, []byte(prev))
	if i < 0 {
		// Not there yet, unless a whole prev field is there with
		// another value.
		j := bytes.LastIndex(frag, []byte(prev[:len(prev)-len(c.prev)-1]))
		return j < 0 || len(frag) < j+len(prev)
	}
	rest := frag[i+len(prev):]
	if len(rest) <= len(hashPrefix) {
		return bytes.HasPrefix([]byte(hashPrefix), rest)
	}
	if !bytes.HasPrefix(rest, []byte(hashPrefix)) {
		return false
	}
	h := rest[len(hashPrefix):]
	for j, b := range h {
		if j == sha256.Size*2 {
			// The whole record is there but for its newline: it must
			// verify.
			if !bytes.HasPrefix([]byte(hashEnd), h[j:]) {
				return false
			}
			if len(h[j:]) < len(hashEnd) {
				return true
			}
			body, hash, ok := unseal(frag)
			sum := sha256.Sum256(body)
			return ok && hex.EncodeToString(sum[:]) == hash
		}
		if !('0' <= b && b <= '9' || 'a' <= b && b <= 'f') {
			return false
		}
	}
	return true
}

// next checks one line (without its newline) against the chain so far and
// advances the chain if it verifies.
func (c *chain) next(lineNo int, line []byte) *VerifyError {
	if c.fastNext(line) {
		return nil
	}
	want := c.sum.LastSeq + 1
	body, hash, ok := unseal(line)
	if !ok {
		return c.fail(lineNo, "malformed line: does not end in a valid hash field")
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); got != hash {
		return c.fail(lineNo, "hash mismatch: line says %s, content hashes to %s", hash, got)
	}
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		return c.fail(lineNo, "malformed record: %v", err)
	}
	canon, err := r.body()
	if err != nil || !bytes.Equal(canon, body) {
		return c.fail(lineNo, "record is not in canonical form")
	}
	if _, off := r.Time.Zone(); off != 0 {
		return c.fail(lineNo, "time %s is not UTC", r.Time.Format(time.RFC3339Nano))
	}
	if r.Seq != want {
		return c.fail(lineNo, "seq is %d, want %d", r.Seq, want)
	}
	if r.Prev != c.prev {
		return c.fail(lineNo, "prev is %s, want hash of previous record %s", r.Prev, c.prev)
	}
	if c.sum.Records == 0 {
		c.sum.FirstTime = r.Time
	}
	c.sum.Records++
	c.sum.LastSeq = r.Seq
	c.sum.LastHash = hash
	c.sum.LastTime = r.Time
	c.prev = hash
	return nil
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line into buf. It returns the line without its
// newline and complete=true, or at end of file whatever followed the last
// newline with complete=false (empty at a clean end).
func readLine(br *bufio.Reader, buf []byte) (line []byte, complete bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > maxLineLen+1 {
			return buf, false, errLineTooLong
		}
		switch {
		case err == nil:
			return buf[:len(buf)-1], true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return buf, false, nil
		default:
			return buf, false, err
		}
	}
}
