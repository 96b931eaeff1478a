package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// layout names the files of one log. Given the active file P (say
// DIR/audit.log) the log also has, in the same directory:
//
//	DIR/audit-000001.log …  sealed segments, oldest first (rotation)
//	DIR/audit.checkpoints   the signed checkpoints, one note after another
//	DIR/checkpoint.key      the Ed25519 note signer key (mode 0600)
type layout struct {
	dir    string
	active string // the file being appended to
	stem   string // base name of active without ".log"
	ckpts  string
	key    string
}

// DefaultLogName is the active file's name when a directory is given.
const DefaultLogName = "audit.log"

// KeyFileName is the signer key's name in the log's directory unless
// Options.KeyFile says otherwise.
const KeyFileName = "checkpoint.key"

func newLayout(path, keyFile string) layout {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	dir = filepath.Clean(dir)
	stem := strings.TrimSuffix(base, ".log")
	ly := layout{dir: dir, active: path, stem: stem, ckpts: filepath.Join(dir, stem+".checkpoints"), key: keyFile}
	if ly.key == "" {
		ly.key = filepath.Join(dir, KeyFileName)
	}
	return ly
}

// resolve returns the layout for a directory (its audit.log) or the path
// of a log's active file.
func resolve(dirOrPath, keyFile string) layout {
	if fi, err := os.Stat(dirOrPath); err == nil && fi.IsDir() {
		return newLayout(filepath.Join(dirOrPath, DefaultLogName), keyFile)
	}
	return newLayout(dirOrPath, keyFile)
}

// segment returns the path of sealed segment n.
func (ly layout) segment(n int) string {
	return filepath.Join(ly.dir, fmt.Sprintf("%s-%06d.log", ly.stem, n))
}

// segments lists the sealed segments' numbers in order. They must be
// numbered 1, 2, … without gaps: a missing one is a deleted segment.
func (ly layout) segments() ([]int, error) {
	entries, err := os.ReadDir(ly.dir)
	if err != nil {
		return nil, err
	}
	var ns []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), ly.stem+"-")
		if !ok {
			continue
		}
		num, ok := strings.CutSuffix(rest, ".log")
		if !ok || len(num) < 6 {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil || n <= 0 || e.Name() != filepath.Base(ly.segment(n)) {
			continue
		}
		ns = append(ns, n)
	}
	sort.Ints(ns)
	for i, n := range ns {
		if n != i+1 {
			return nil, fmt.Errorf("sealed segment %s is missing (the next one is %s)", filepath.Base(ly.segment(i+1)), filepath.Base(ly.segment(n)))
		}
	}
	return ns, nil
}

// files lists every file of the log in order: the sealed segments, then
// the active file (which may not exist: rotation renames it before it
// creates the next).
func (ly layout) files() ([]string, error) {
	ns, err := ly.segments()
	if err != nil {
		return nil, err
	}
	var fs []string
	for _, n := range ns {
		fs = append(fs, ly.segment(n))
	}
	return append(fs, ly.active), nil
}
