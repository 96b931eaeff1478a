package audit

import (
	"crypto/sha256"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The Merkle tree is RFC 6962's over every record in the log, in seq
// order: leaf i (0-based) is record seq i+1, and its data is the record's
// line without its newline. A Log keeps the tree as a compact range (one
// hash per set bit of the size), so a checkpoint costs O(log n).

var hasher = rfc6962.DefaultHasher

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// leafHash is RFC 6962's leaf hash of a line (without its newline):
// sha256(0x00 || line).
func leafHash(line []byte) []byte {
	h := sha256.New()
	h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	h.Write(line)
	return h.Sum(make([]byte, 0, sha256.Size))
}

// rootOf returns the root hash of the tree r covers (which starts at 0):
// the hash of the empty string for an empty tree.
func rootOf(r *compact.Range) []byte {
	root, err := r.GetRootHash(nil)
	if err != nil || root == nil {
		return hasher.EmptyRoot()
	}
	return root
}

// nodeCollector keeps the hashes of the tree nodes a proof needs while a
// range is built over the leaves: pass its visit to Range.Append.
type nodeCollector struct {
	want map[compact.NodeID]int // node -> how many of hashes are waiting
	got  map[compact.NodeID][]byte
}

func newNodeCollector() *nodeCollector {
	return &nodeCollector{want: map[compact.NodeID]int{}, got: map[compact.NodeID][]byte{}}
}

func (c *nodeCollector) add(ids []compact.NodeID) {
	for _, id := range ids {
		c.want[id]++
	}
}

func (c *nodeCollector) visit(id compact.NodeID, hash []byte) {
	if _, ok := c.want[id]; ok {
		c.got[id] = hash
	}
}

// hashes returns the hashes of ids, all of which must have been visited.
func (c *nodeCollector) hashes(ids []compact.NodeID) ([][]byte, bool) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := c.got[id]
		if !ok {
			return nil, false
		}
		out[i] = h
	}
	return out, true
}
