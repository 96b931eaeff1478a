package audit

// Event is what a caller asks the log to record; the log adds sequence
// number, time and hash chain.
type Event struct {
	Type      string            // one of the Type* constants
	Actor     string            // who asked: the principal's name, or "udfhost"
	SPIFFEID  string            // the SPIFFE ID that authenticated Actor, if mTLS did
	Network   string            // the network Actor's call arrived on, if any
	Pod       string            // pod identity (SPIFFE ID) involved, if any
	Resource  string            // e.g. "artifact/art-…", "function/default/add"
	Decision  string            // Allow, Deny or Error
	Reason    string            // why, in words; never a secret
	RequestID string            // correlates with the API call
	Details   map[string]string // small extra facts (rows, syscall, limit…)
}

// Decisions.
const (
	Allow = "allow"
	Deny  = "deny"
	Error = "error"
)

// Event types. Names are stable: operators grep for them.
const (
	TypeServerStarted = "server.started"
	TypeServerStopped = "server.stopped"
	TypeAuthFailed    = "auth.failed"
	TypePolicyDenied  = "policy.denied"
	// A call refused by the access matrix or the caller's roles; the
	// record names the principal, the network, the environment and why.
	TypeAccessDenied      = "access.denied"
	TypeUploadURLIssued   = "upload.url_issued"
	TypeUploadReceived    = "upload.received"
	TypeUploadRejected    = "upload.rejected"
	TypeArtifactCommitted = "artifact.committed"
	TypeArtifactRejected  = "artifact.rejected"
	TypeArtifactDeleted   = "artifact.deleted"
	TypeFunctionCreated   = "function.created"
	TypeFunctionDeleted   = "function.deleted"
	TypeWorkerStarted     = "worker.started"
	TypeWorkerStopped     = "worker.stopped"
	TypeInvocation        = "invocation.summary"
	// A batch run again on a new worker because its worker died under it.
	TypeInvocationRetried = "invocation.retried"
	TypeSandboxViolation  = "sandbox.violation" // trap, timeout, memory, bad output, crash
	TypeSandboxLayers     = "sandbox.layers"    // what `doctor` measured at start

	// An artifact's functions are refused after repeated sandbox
	// violations (quarantined) until an admin releases it.
	TypeArtifactQuarantined = "artifact.quarantined"
	TypeArtifactReleased    = "artifact.released"

	// A host fetched an artifact's bytes from the object store for a
	// pod (details: digest, bytes, source), or refused them because
	// they did not hash to their digest (a security event: the bucket
	// holds other code than was committed; decision deny).
	TypeArtifactDownloaded     = "artifact.downloaded"
	TypeArtifactDigestMismatch = "artifact.digest_mismatch"

	// Opening the log removed an incomplete final line (a write torn by
	// a crash or a full disk); details: offset, line, bytes_removed and
	// the sha256 of the removed bytes.
	TypeAuditRepaired = "audit.repaired"
	// Opening the log found records after the last signed checkpoint,
	// one that was not written by Close: the tail of an unclean stop (a
	// crash, SIGKILL, power loss) or a rolled-back checkpoint file. A
	// checkpoint right after it covers them; details: records, first_seq,
	// last_seq, last_checkpoint (the size it covered) and, if a torn
	// checkpoint was removed, checkpoint_bytes_removed.
	TypeAuditUncovered = "audit.uncovered"

	// SIGHUP re-read the policy file: applied (details: file, sha256,
	// previous_sha256, summary, changes) or refused (reason: the
	// problem, FILE:LINE:COL where it has a place; the old policy stays).
	TypePolicyReloaded      = "policy.reloaded"
	TypePolicyReloadRefused = "policy.reload_refused"
)
