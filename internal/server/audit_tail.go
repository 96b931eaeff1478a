package server

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// tailPoll is how often a following Tail looks for new durable records:
// a mutex and an integer compare while nothing was written, so a few
// hundred followers cost nothing worth measuring.
const tailPoll = 250 * time.Millisecond

// Tail streams the records the caller may read (the same rule as
// ReadAudit's, filter) from since_seq on, each with its line as the log
// holds it. Without follow it ends at the last record durable when the
// call began; with follow it then waits for more, sending each once it
// is durable (never one a failed write could still roll back), until
// the caller cancels or the server shuts down (UNAVAILABLE, naming the
// seq to resume from).
func (as *auditService) Tail(req *udfhostv1.TailRequest, stream udfhostv1.AuditService_TailServer) error {
	ctx := stream.Context()
	show, err := as.filter(ctx, req.Env)
	if err != nil {
		return err
	}
	log := as.s.audit
	next := max(req.SinceSeq, 1)
	lf := &logFollower{path: log.Path()}
	defer lf.close()
	var tick *time.Ticker
	for {
		if upto := log.DurableSeq(); upto >= next {
			next, err = lf.read(next, upto, func(r audit.Record, line []byte) error {
				if req.Type != "" && r.Type != req.Type || !show(recordEnv(r)) {
					return nil
				}
				return stream.Send(&udfhostv1.TailResponse{Record: recordProto(r), Line: bytes.Clone(line)})
			})
			if err != nil {
				return err
			}
		}
		if !req.Follow {
			return nil
		}
		if tick == nil {
			tick = time.NewTicker(tailPoll)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-as.s.draining:
			return status.Errorf(codes.Unavailable, "the server is shutting down; tail again from since_seq %d", next)
		case <-tick.C:
		}
	}
}

// proofSource is what GetCheckpoint and Prove need of the audit log:
// its signed checkpoints and proofs against them (docs/AUDIT.md). A log
// without checkpoints answers both UNIMPLEMENTED.
type proofSource interface {
	// LatestCheckpoint is the latest signed checkpoint, a C2SP
	// tlog-checkpoint signed note.
	LatestCheckpoint() ([]byte, error)
	// InclusionProof proves record seq against the latest checkpoint,
	// as one JSON document.
	InclusionProof(seq uint64) ([]byte, error)
	// ConsistencyProof proves the tree of oldSize records a prefix of the
	// tree of newSize, as one JSON document.
	ConsistencyProof(oldSize, newSize uint64) ([]byte, error)
}

var errNoCheckpoints = status.Error(codes.Unimplemented, "this host's audit log keeps no checkpoints")

// proofs is the log's proofSource: as.proofSrc where set (a test's),
// else the server's audit log if it keeps checkpoints.
func (as *auditService) proofs() (proofSource, error) {
	if as.proofSrc != nil {
		return as.proofSrc, nil
	}
	p, ok := any(as.s.audit.Log).(proofSource)
	if !ok {
		return nil, errNoCheckpoints
	}
	return p, nil
}

// GetCheckpoint returns the latest signed checkpoint to a caller who may
// read some of the log (filter): it names only the log's size and root
// hash, and an auditor of one environment needs it to check proofs of
// that environment's records.
func (as *auditService) GetCheckpoint(ctx context.Context, _ *udfhostv1.GetCheckpointRequest) (*udfhostv1.GetCheckpointResponse, error) {
	if _, err := as.filter(ctx, ""); err != nil {
		return nil, err
	}
	p, err := as.proofs()
	if err != nil {
		return nil, err
	}
	note, _, err := latestCheckpoint(p)
	if err != nil {
		return nil, err
	}
	return &udfhostv1.GetCheckpointResponse{Checkpoint: note}, nil
}

// Prove returns an inclusion proof of one record, to a caller who may
// read that record (AuditRead in its environment, or organisation-wide
// for a record of the whole organisation, as ReadAudit shows it; a
// denial is audited), or a consistency proof between two tree sizes, to
// a caller who may read some of the log (it holds only hashes).
func (as *auditService) Prove(ctx context.Context, req *udfhostv1.ProveRequest) (*udfhostv1.ProveResponse, error) {
	if _, err := as.filter(ctx, ""); err != nil {
		return nil, err
	}
	p, err := as.proofs()
	if err != nil {
		return nil, err
	}
	_, size, err := latestCheckpoint(p)
	if err != nil {
		return nil, err
	}
	var doc []byte
	switch w := req.Proof.(type) {
	case *udfhostv1.ProveRequest_Seq:
		if err := as.mayProve(ctx, w.Seq, size); err != nil {
			return nil, err
		}
		if doc, err = p.InclusionProof(w.Seq); err != nil {
			return nil, status.Errorf(codes.Unavailable, "prove record %d: %v", w.Seq, err)
		}
	case *udfhostv1.ProveRequest_Consistency:
		old, cur := w.Consistency.GetOldSize(), w.Consistency.GetNewSize()
		switch {
		case old == 0 || old > cur:
			return nil, status.Errorf(codes.InvalidArgument, "consistency from tree size %d to %d: want 0 < old size <= new size", old, cur)
		case cur > size:
			return nil, status.Errorf(codes.FailedPrecondition, "consistency to tree size %d: the latest checkpoint covers %d records", cur, size)
		}
		if doc, err = p.ConsistencyProof(old, cur); err != nil {
			return nil, status.Errorf(codes.Unavailable, "prove consistency from tree size %d to %d: %v", old, cur, err)
		}
	default:
		return nil, status.Error(codes.InvalidArgument, "prove: set seq or consistency")
	}
	return &udfhostv1.ProveResponse{Proof: doc}, nil
}

// mayProve checks that record seq is covered by the latest checkpoint
// (of size records) and that the caller may read it.
func (as *auditService) mayProve(ctx context.Context, seq, size uint64) error {
	switch {
	case seq == 0:
		return status.Error(codes.InvalidArgument, "prove record 0: records are numbered from 1")
	case seq > as.s.audit.DurableSeq():
		return status.Errorf(codes.NotFound, "prove record %d: the log has %d records", seq, as.s.audit.DurableSeq())
	case seq > size:
		return status.Errorf(codes.FailedPrecondition, "prove record %d: the latest checkpoint covers records 1 to %d; ask again after the next checkpoint", seq, size)
	}
	var rec *audit.Record
	err := audit.Read(as.s.audit.Path(), seq, func(r audit.Record) error {
		if r.Seq == seq {
			rec = &r
		}
		return audit.ErrStop
	})
	if err != nil {
		return err
	}
	if rec == nil {
		return status.Errorf(codes.NotFound, "prove record %d: it is not in the current log file", seq)
	}
	return as.s.authorizeAs(ctx, policies.AuditRead, envRef(recordEnv(*rec)), "")
}

// latestCheckpoint returns the latest checkpoint and its tree size, the
// second line of a C2SP tlog-checkpoint (origin, size, root hash, then
// the signatures).
func latestCheckpoint(p proofSource) ([]byte, uint64, error) {
	note, err := p.LatestCheckpoint()
	if err != nil {
		return nil, 0, status.Errorf(codes.Unavailable, "read the latest audit checkpoint: %v", err)
	}
	if len(note) == 0 {
		return nil, 0, status.Error(codes.FailedPrecondition, "the audit log has no checkpoint yet")
	}
	lines := bytes.SplitN(note, []byte("\n"), 3)
	if len(lines) < 3 {
		return nil, 0, status.Error(codes.Internal, "the latest audit checkpoint has no tree size line")
	}
	size, err := strconv.ParseUint(string(lines[1]), 10, 64)
	if err != nil {
		return nil, 0, status.Errorf(codes.Internal, "the latest audit checkpoint's tree size %q: %v", lines[1], err)
	}
	return note, size, nil
}
