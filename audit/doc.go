// Package audit writes and verifies udfhost's append-only, hash-chained
// audit log (DESIGN.md §9).
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
// hash. A final line without its "\n" (a torn write after a crash) is
// refused. Any changed, inserted or deleted byte therefore makes
// verification fail at the record containing it; the failure names the
// first bad record with a [*VerifyError].
//
// The chain alone cannot detect removal of whole records from the end of
// the file, nor a rewrite of the whole file by someone who recomputes every
// hash; signed checkpoints (a separate mechanism) cover those.
//
// # Writing
//
// A [Log] appends records with O_APPEND, one write(2) and one fsync per
// batch: Appends that arrive while an fsync is in progress are group
// committed together by the next writer. Append returns only after the
// record is durable. If a write or fsync fails the Log is broken: that
// Append and every later one returns an error wrapping [ErrBroken], so the
// caller refuses the action it wanted to record (fail closed). Only one Log
// (in one process) may write a given file at a time.
package audit
