package wasmscan

import (
	"errors"
	"fmt"
	"math"
)

// bodyStats is what a walk over one function body's instructions learns.
type bodyStats struct {
	instrs  int      // instructions, the final end included
	blocks  int      // basic blocks wazero's compiler allocates for them
	depth   int      // deepest nesting of block, loop, if and try_table
	maxDist int      // farthest basic block from the entry
	locals  int      // 1 + the highest local index local.get reads
	grown   []uint32 // tables that table.grow grows
	// The terms of work; see flowModel.
	dist   int64 // instructions' and blocks' distances from the entry
	joins  int64 // edges into joins: source's distance and chain
	preds2 int64 // joins' squared numbers of predecessors
	phis   int64 // see flowModel.phiWork
}

// work estimates the steps of wazero's optimizing compiler that grow
// faster than the function's size.
func (s bodyStats) work() int64 {
	return satAdd(s.dist+s.preds2, satAdd(satMul(int64(s.locals+1), s.joins), s.phis))
}

// flowModel follows the basic blocks wazero v1.12's optimizing compiler
// builds from structured control flow (internal/engine/wazevo/frontend)
// to bound what compiling a function costs beyond its size (profiled):
//
//   - the dominator and loop-nesting passes walk from every block, and from
//     every predecessor of a block, up the dominator tree: at most the
//     block's distance from the entry, since every dominator lies on the
//     shortest path;
//   - SSA construction looks a local up from where local.get reads it,
//     through single-predecessor blocks (never memoized), then through
//     every predecessor of a join (memoized per local and join), adding
//     phis: for each local, at most the single-predecessor chain above
//     every edge into a join;
//   - redundant phi elimination resolves phi arguments through a chain of
//     aliases, one per join above: for each local and edge into a join, at
//     most the join's distance; and see phiWork;
//   - adding a predecessor to a block scans those it has: the square of
//     the number of edges into a join.
//
// One pass finds all of them for structured code: a block after an end is
// one step further than the nearest of its predecessors, and continues its
// predecessor's chain if it has only one. Straight-line code and toolchain
// output (Go's br_table dispatch brings every block back near the entry)
// stay near the entry; 30,000 nested blocks, or as many blocks, ifs or
// br_ifs one after the other, put them 30,000 steps away and cost ~30,000²
// steps; a join with 2,000 br_ifs into it costs 2,000²/2 steps per local
// read after it.
//
// Unreachable code is compiled to nothing and modelled so: counting an
// edge the compiler does not make could make distances shorter.
type flowModel struct {
	stats  bodyStats
	frames []frame
	cur    block // the current block
	live   bool  // false in unreachable code
	loops  int   // live loops around the current block
	reads  int64 // local.get instructions so far
	joined []join
}

// join is a join's number of predecessors, the local.get instructions
// before it and the loops around it.
type join struct {
	preds, reads, loops int64
}

// block is where a basic block lies: its distance from the entry and the
// length of the single-predecessor chain above it.
type block struct{ dist, run int }

type frame struct {
	op   byte // opBlock, opLoop, opIf (opElse once its else is seen), opTryTable; 0 for the function
	dead bool // opened in unreachable code
	// at is the block the construct began in, next the block after it
	// (a loop's header, while in the loop) as its preds predecessors so far
	// make it; joinCost is what they add to bodyStats.joins if it is a join.
	at, next        block
	preds, joinCost int64
	reads           int64 // flowModel.reads at a loop's header
}

const far = math.MaxInt32 // no predecessor yet

func newFlowModel() *flowModel {
	return &flowModel{frames: []frame{{next: block{dist: far}}}, live: true}
}

func (f *flowModel) done() bool { return len(f.frames) == 0 }

// instr counts an instruction at the current block.
func (f *flowModel) instr() {
	f.stats.instrs++
	if f.live {
		f.stats.dist += int64(f.cur.dist) + 1
	}
}

// localGet counts a local.get of local idx.
func (f *flowModel) localGet(idx uint32) {
	if f.live {
		f.reads++
	}
	f.stats.locals = max(f.stats.locals, int(min(idx, maxLocals+maxParams))+1)
}

// newBlock counts a block at b and returns it.
func (f *flowModel) newBlock(b block) block {
	f.stats.blocks++
	f.stats.dist += int64(b.dist)
	f.stats.maxDist = max(f.stats.maxDist, b.dist)
	return b
}

// below is a block whose only predecessor is the current block.
func (f *flowModel) below() block { return block{f.cur.dist + 1, f.cur.run + 1} }

func (f *flowModel) open(op byte) error {
	f.frames = append(f.frames, frame{op: op, dead: !f.live, at: f.cur, next: block{dist: far}})
	if f.stats.depth = max(f.stats.depth, len(f.frames)-1); f.stats.depth > maxControlDepth {
		return fmt.Errorf("blocks, loops and ifs nest more than %d deep", maxControlDepth)
	}
	if !f.live {
		return nil
	}
	switch op {
	case opLoop: // a header the back edges join; counted as a join, chained as not one
		top := &f.frames[len(f.frames)-1]
		top.edge(f.cur)
		top.reads = f.reads
		f.loops++
		f.cur = f.newBlock(f.below())
	case opTryTable:
		f.cur = f.newBlock(f.below())
	case opIf: // then and else blocks, below the current one
		f.newBlock(f.below())
		f.cur = f.newBlock(f.below())
	}
	return nil
}

func (f *flowModel) els() error {
	top := &f.frames[len(f.frames)-1]
	if top.op != opIf {
		return errors.New("else without if")
	}
	top.op = opElse
	if top.dead {
		return nil
	}
	if f.live {
		top.edge(f.cur)
	}
	f.live = true
	f.cur = block{top.at.dist + 1, top.at.run + 1}
	return nil
}

// edge records an edge from block b to what follows the frame (or, for a
// loop, to its header).
func (t *frame) edge(b block) {
	t.next.dist = min(t.next.dist, b.dist+1)
	t.next.run = b.run + 1
	t.preds++
	t.joinCost += edgeCost(b)
}

func edgeCost(b block) int64 { return int64(b.dist) + int64(b.run) + 2 }

func (f *flowModel) end() error {
	top := f.frames[len(f.frames)-1]
	f.frames = f.frames[:len(f.frames)-1]
	if top.dead {
		return nil
	}
	if top.op == opLoop { // its header's predecessors; what follows it has one
		f.stats.joins += top.joinCost
		f.stats.preds2 += top.preds * top.preds
		f.joined = append(f.joined, join{top.preds, top.reads, int64(f.loops)})
		f.loops--
		top.preds, top.joinCost, top.next = 0, 0, block{dist: far}
	}
	if f.live {
		top.edge(f.cur)
	}
	if len(f.frames) == 0 { // the function's return block
		f.stats.joins += top.joinCost
		f.stats.preds2 += top.preds * top.preds
		f.stats.phis = f.phiWork()
		return nil
	}
	if top.op == opIf { // the implicit else block jumps to what follows
		top.edge(block{top.at.dist + 1, top.at.run + 1})
	}
	if f.live = top.preds > 0; !f.live {
		return nil
	}
	if top.preds > 1 {
		top.next.run = 0
		f.stats.joins += top.joinCost
		f.stats.preds2 += top.preds * top.preds
		f.joined = append(f.joined, join{top.preds, f.reads, int64(f.loops)})
	}
	f.cur = f.newBlock(top.next)
	return nil
}

// branch records a br (cond false) or a br_if, br_on_null, br_on_non_null
// (cond true: what follows is a block below the current one).
func (f *flowModel) branch(label uint32, cond bool) error {
	if err := f.target(label, f.cur); err != nil || !f.live {
		return err
	}
	if cond {
		f.cur = f.newBlock(f.below())
	} else {
		f.live = false
	}
	return nil
}

// tableBranch records a branch through a block of its own below the
// current one: a br_table trampoline or a catch handler.
func (f *flowModel) tableBranch(label uint32) error {
	if !f.live {
		return f.target(label, f.cur)
	}
	return f.target(label, f.newBlock(f.below()))
}

// target records an edge from block b to label.
func (f *flowModel) target(label uint32, b block) error {
	if int64(label) >= int64(len(f.frames)) {
		return fmt.Errorf("branch to label %d, only %d enclosing blocks", label, len(f.frames))
	}
	if !f.live {
		return nil
	}
	f.frames[len(f.frames)-1-int(label)].edge(b)
	return nil
}

// phiWork bounds redundant phi elimination: every pass over a join's phis
// resolves, for each phi and predecessor, the predecessor's whole argument
// list, and wazero passes again while a pass changes anything, which loops
// nested around a join can make happen once per level. A join has a phi for
// at most every local read after it.
func (f *flowModel) phiWork() int64 {
	var w int64
	for _, j := range f.joined {
		p := min(int64(f.stats.locals), f.reads-j.reads)
		w = satAdd(w, satMul(j.preds*(j.loops+1), p*p))
	}
	return w
}

// satAdd and satMul add and multiply numbers ≥ 0, saturating at
// math.MaxInt64 so that no estimate can wrap around below a limit.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// stop makes the rest of the current block unreachable.
func (f *flowModel) stop() { f.live = false }

// fillLoop adds the blocks of memory.fill's and table.fill's copy loop: a
// preheader and a loop below the current block, and a join after them.
func (f *flowModel) fillLoop() {
	if !f.live {
		return
	}
	pre := f.newBlock(f.below())
	loop := f.newBlock(block{pre.dist + 1, pre.run + 1})
	f.stats.joins += edgeCost(pre) + 2*edgeCost(loop) + edgeCost(f.cur)
	f.stats.preds2 += 8
	f.cur = f.newBlock(block{f.cur.dist + 1, 0})
}
