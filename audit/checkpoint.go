package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// A checkpoint is a C2SP tlog-checkpoint signed note:
//
//	<origin>
//	<tree size>
//	<base64 root hash>
//	[udfhost final]
//
//	— <key name> <base64 signature>
//
// The optional fourth line, an extension line, marks the checkpoint a Log
// writes when it is closed: nothing may follow it in the log until a later
// checkpoint (the one Open writes first) says the log was opened again.
// The checkpoint file holds the notes one after another, each followed by
// a blank line.

// FinalLine is the extension line of a checkpoint written by Close.
const FinalLine = "udfhost final"

// Checkpoint is one checkpoint of the checkpoint file.
type Checkpoint struct {
	Index  int    // 1-based position in the checkpoint file
	Offset int64  // byte offset in the checkpoint file
	Origin string // the log's origin (host id)
	Size   uint64 // records covered: seq 1 to Size
	Root   []byte // RFC 6962 root hash of those records
	Final  bool   // written by Close: the log was stopped cleanly here
	Note   []byte // the signed note, as in the file
}

// checkpointBody returns the note text of a checkpoint.
func checkpointBody(origin string, size uint64, root []byte, final bool) string {
	text := string(log.Checkpoint{Origin: origin, Size: size, Hash: root}.Marshal())
	if final {
		text += FinalLine + "\n"
	}
	return text
}

// parseBody parses a checkpoint's note text.
func parseBody(text string) (Checkpoint, error) {
	var cp log.Checkpoint
	rest, err := cp.Unmarshal([]byte(text))
	if err != nil {
		return Checkpoint{}, err
	}
	if len(cp.Hash) != hasher.Size() {
		return Checkpoint{}, fmt.Errorf("root hash is %d bytes, want %d", len(cp.Hash), hasher.Size())
	}
	if c := (log.Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash}).Marshal(); !strings.HasPrefix(text, string(c)) {
		return Checkpoint{}, errors.New("checkpoint body is not in canonical form")
	}
	out := Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash}
	switch string(rest) {
	case "":
	case FinalLine + "\n":
		out.Final = true
	default:
		return Checkpoint{}, fmt.Errorf("unknown extension lines %q", rest)
	}
	return out, nil
}

// openCheckpoint checks a signed checkpoint note with v and parses it.
func openCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			var names []string
			for _, s := range unverified.Note.UnverifiedSigs {
				names = append(names, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
			}
			return Checkpoint{}, fmt.Errorf("not signed by key %s+%08x (signed by %s): forged, or signed with another key", v.Name(), v.KeyHash(), strings.Join(names, ", "))
		}
		var invalid *note.InvalidSignatureError
		if errors.As(err, &invalid) {
			return Checkpoint{}, fmt.Errorf("signature by %s+%08x does not verify: the checkpoint was changed after it was signed", v.Name(), v.KeyHash())
		}
		return Checkpoint{}, fmt.Errorf("not a signed note: %v", err)
	}
	cp, err := parseBody(n.Text)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("signed, but not a checkpoint: %v", err)
	}
	if cp.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("origin is %q, want %q", cp.Origin, v.Name())
	}
	cp.Note = msg
	return cp, nil
}

// rawCheckpoint is one note of the checkpoint file before it is checked.
type rawCheckpoint struct {
	offset int64
	note   []byte
}

// splitCheckpoints splits a checkpoint file into its notes. Each note is
// text lines, a blank line, signature lines and the blank line that ends
// it. tail is what follows the last complete note: empty, or what a write
// torn by a crash left of one (the file is fsynced after each note, so
// only the last can be incomplete).
func splitCheckpoints(data []byte) (notes []rawCheckpoint, tail []byte) {
	off := 0
	for off < len(data) {
		rest := data[off:]
		i := bytes.Index(rest, []byte("\n\n"))
		if i < 0 {
			return notes, rest
		}
		j := bytes.Index(rest[i+2:], []byte("\n\n"))
		if j < 0 {
			return notes, rest
		}
		end := i + 2 + j + 1 // the note ends with its last signature line's newline
		notes = append(notes, rawCheckpoint{offset: int64(off), note: rest[:end]})
		off += end + 1
	}
	return notes, nil
}

// CheckpointError reports a checkpoint that does not verify.
type CheckpointError struct {
	Index  int    // 1-based position in the checkpoint file (0: the file itself)
	Offset int64  // byte offset in the checkpoint file
	Size   uint64 // the tree size it claims, if it could be read
	File   string
	Reason string
}

func (e *CheckpointError) Error() string {
	if e.Index == 0 {
		return fmt.Sprintf("checkpoint file %s: %s", e.File, e.Reason)
	}
	return fmt.Sprintf("checkpoint %d (offset %d of %s, size %d): %s", e.Index, e.Offset, e.File, e.Size, e.Reason)
}

// readCheckpoints reads and checks every checkpoint in path against v: its
// signature and form, and that sizes never go down. A missing file holds
// no checkpoints. tail is an incomplete final note (see
// splitCheckpoints), with its offset.
func readCheckpoints(path string, v note.Verifier) (cps []Checkpoint, tail []byte, tailOff int64, err error) {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, nil, 0, fmt.Errorf("read checkpoints: %w", err)
	}
	raws, tail := splitCheckpoints(data)
	tailOff = int64(len(data) - len(tail))
	for i, r := range raws {
		if v == nil {
			return nil, nil, 0, &CheckpointError{Index: i + 1, Offset: r.offset, File: path, Reason: "no key to check it with"}
		}
		cp, err := openCheckpoint(r.note, v)
		if err != nil {
			ce := &CheckpointError{Index: i + 1, Offset: r.offset, File: path, Reason: err.Error()}
			if c, perr := parseBody(noteText(r.note)); perr == nil {
				ce.Size = c.Size
			}
			return cps, nil, 0, ce
		}
		cp.Index, cp.Offset = i+1, r.offset
		if n := len(cps); n > 0 && cp.Size < cps[n-1].Size {
			return cps, nil, 0, &CheckpointError{Index: i + 1, Offset: r.offset, Size: cp.Size, File: path,
				Reason: fmt.Sprintf("tree size %d is smaller than checkpoint %d's %d: checkpoints were reordered or replaced", cp.Size, n, cps[n-1].Size)}
		}
		cps = append(cps, cp)
	}
	return cps, tail, tailOff, nil
}

// listCheckpoints parses the checkpoints in path without checking their
// signatures, for proofs: a proof's checkpoints are checked one by one
// (checkProof), not the whole file, which grows with the log.
func listCheckpoints(path string) ([]Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	raws, _ := splitCheckpoints(data)
	cps := make([]Checkpoint, 0, len(raws))
	for i, r := range raws {
		cp, err := parseBody(noteText(r.note))
		if err != nil {
			return nil, &CheckpointError{Index: i + 1, Offset: r.offset, File: path, Reason: err.Error()}
		}
		cp.Index, cp.Offset, cp.Note = i+1, r.offset, r.note
		cps = append(cps, cp)
	}
	return cps, nil
}

// noteText returns the text of a note, up to its blank line.
func noteText(msg []byte) string {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return string(msg)
	}
	return string(msg[:i+1])
}

// sizeString formats a tree size for messages.
func sizeString(n uint64) string { return strconv.FormatUint(n, 10) }

// encodeRoot is the base64 form of a root hash, as in a checkpoint.
func encodeRoot(root []byte) string { return base64.StdEncoding.EncodeToString(root) }
