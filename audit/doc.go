// Package audit writes and verifies udfhost's append-only, hash-chained
// audit log (docs/DESIGN.md, "Audit log").
//
// # File format
//
// The log is a file of JSON lines, one [Record] per line, each ending in
// "\n". A line is built like this:
//
//	body = json.Marshal(record without its hash)
//	     = {"seq":N,"time":"…","type":"…",…,"prev":"<64 hex>"}
//	hash = hex(sha256(body))
//	line = body without its final "}" + `,"hash":"` + hash + `"}` + "\n"
//
// so a line is exactly the JSON encoding of the full record. Seq starts at 1
// and increases by one per record; prev is the hash of the previous record,
// or 64 zeros for the first.
//
// # Verification
//
// [Verify] (and [Open], before it appends anything) works on the exact
// bytes of each line, never on a re-encoding: it strips the
// `,"hash":"<64 lowercase hex>"}` suffix, puts back the "}", hashes the
// result and compares it with the hash in the line. It then parses the body,
// checks that it is in canonical form (re-encoding it gives the same
// bytes), that its time is UTC, that seq is one more than the previous
// record's (1 for the first) and that prev equals the previous record's
// hash. Any changed, inserted or deleted byte therefore makes verification
// fail at the record containing it; the failure names the first bad record
// with a [*VerifyError].
//
// A final line without its "\n" is reported too. If it is the start of the
// record that should come next (its seq, chained onto the last record's
// hash, a prefix of such a line) it is a write torn by a crash or a full
// disk: a record that was never acknowledged, since Append returns only
// after the whole line is fsynced. [Open] removes such a line and records
// the repair as a [TypeAuditRepaired] record (offset, line, bytes removed,
// their sha256) before it appends anything else. Nothing else is ever cut:
// damage before the final line, or a final line that is not such a prefix,
// makes Open refuse.
//
// The chain alone cannot detect removal of whole records from the end of
// the file, nor a rewrite of the whole file by someone who recomputes every
// hash: the checkpoints do.
//
// # Checkpoints
//
// An RFC 6962 Merkle tree spans every record (leaf i is the line of record
// seq i+1, without its newline), kept by the Log as a compact range. Every
// Options.CheckpointEvery records or Options.CheckpointInterval, at Open,
// at every rotation and at Close, the Log appends to the checkpoint file
// a C2SP tlog-checkpoint (origin, tree size, root hash) signed as a C2SP
// signed note with the host's Ed25519 key; the one Close writes carries
// the extension line "udfhost final". [VerifyLog] checks the chain, the
// tree, every checkpoint and the consistency between consecutive ones,
// and reports records after the last checkpoint as an [*UncoveredError].
// Open runs the same check: records after a final checkpoint are a forged
// append and refused; records after another checkpoint are the tail of an
// unclean stop, accepted and recorded as a [TypeAuditUncovered] record.
// [ProveInclusion] and [ProveConsistency] give proofs anyone holding the
// verifier key checks with [VerifyProof]. docs/AUDIT.md describes the
// files, the formats, crash versus forgery, rotation and the append-only
// inode flag.
//
// # Writing
//
// A [Log] appends records with O_APPEND, one write(2) and one fsync per
// batch: Appends that arrive while an fsync is in progress are group
// committed together by the next writer. Append returns only after the
// record is durable; an error wrapping [ErrBroken] means it is not in the
// log, and the caller refuses the action it wanted to record (fail
// closed). A failed write or fsync (a full disk, an I/O error) is rolled
// back: the file is truncated to the end of the last durable record and
// fsynced, so no partial record stays in it. The failed batch, and the
// records queued behind it, fail; the next Append chains onto the last
// durable record and tries again, so the log resumes by itself once the
// disk has space. Only if the rollback fails too does the log refuse every
// record until it is reopened, with an error that says so; Close then
// reports it. Only one Log may write a given log at a time: Open takes an
// exclusive flock, and a second Open fails with [ErrInUse].
//
// The package runs in the udfhost server (and the offline CLI). It trusts
// nothing it reads back from the disk: every file is checked before it is
// appended to.
package audit
