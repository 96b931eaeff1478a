package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/internal/atomicfile"
	"github.com/udfhost/udfhost/policies"
	"github.com/udfhost/udfhost/presign"
)

// Upload states. An upload moves pending -> received -> committed, or from
// received to rejected; nothing leaves committed or rejected. A PUT whose
// body is refused leaves it pending.
const (
	statePending   = "pending"   // URL issued, nothing stored yet
	stateUploading = "uploading" // written by older versions while a body streamed; read as pending
	stateReceived  = "received"  // bytes verified and staged, waiting for Commit
	stateCommitted = "committed" // an artifact was created from it
	// Only in a bucket (see BucketStore): a host has validated the bytes
	// and is writing the artifact (ClaimedBy, ClaimedAt).
	stateCommitting = "committing"
	stateRejected   = "rejected" // failed validation; Reason says why
)

// uploadRecord is the persisted state of one upload.
type uploadRecord struct {
	ID         string    `json:"id"`
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"`
	Kind       Kind      `json:"kind"`
	Env        string    `json:"env"`
	Name       string    `json:"name,omitempty"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Actor      string    `json:"actor,omitempty"`
	RequestID  string    `json:"request_id,omitempty"`
	ArtifactID string    `json:"artifact_id,omitempty"`
	// Network is where the URL was asked for, and Visibility what its
	// environment had then; "" in records written before they existed
	// (the public network, a public environment).
	Network    string              `json:"network,omitempty"`
	Visibility policies.Visibility `json:"visibility,omitempty"`
	// ClaimedBy is the host committing the upload and ClaimedAt since
	// when, while State is committing (bucket store only).
	ClaimedBy string    `json:"claimed_by,omitempty"`
	ClaimedAt time.Time `json:"claimed_at,omitzero"`
}

// UploadRequest asks for a pre-signed upload URL.
type UploadRequest struct {
	Kind      Kind          // "udf" (default when empty) or "connector"
	Env       string        // environment the artifact will belong to
	Name      string        // optional human name
	Size      int64         // exact byte count that will be uploaded
	SHA256    string        // lower-case hex of the bytes
	TTL       time.Duration // URL lifetime; 0 means the default
	Actor     string        // who asks, for the audit log
	RequestID string        // correlates with the API call
	// Network is the network the request arrived on: the URL is bound
	// to it (see UploadInfo). Visibility is its environment's now, which
	// the artifact keeps.
	Network    string
	Visibility policies.Visibility
}

// UploadInfo is what a server checks before it lets a CommitUpload go on:
// the environment and network the upload URL was issued for.
type UploadInfo struct {
	ID, Env string
	// Network is where the URL was asked for; "" for uploads issued
	// before networks existed, which were all on the public one.
	Network    string
	Visibility policies.Visibility
}

// MissingUpload is the error Commit (and UploadOf) return for an upload
// id that does not exist.
func MissingUpload(id string) error {
	return fmt.Errorf("commit upload %s: %w", id, missingUpload(id))
}

func missingUpload(id string) error { return fmt.Errorf("%w: upload %s", ErrNotFound, id) }

// UploadOf returns what upload id was issued for.
func (s *Store) UploadOf(ctx context.Context, id string) (UploadInfo, error) {
	if err := checkUploadID(id); err != nil {
		return UploadInfo{}, err
	}
	s.mu.Lock()
	rec, err := s.loadUpload(id)
	s.mu.Unlock()
	if errors.Is(err, ErrNotFound) {
		return UploadInfo{}, MissingUpload(id)
	}
	if err != nil {
		return UploadInfo{}, fmt.Errorf("commit upload %s: %w", id, err)
	}
	return rec.info(), nil
}

// Upload is an issued upload URL: PUT exactly the declared bytes to URL with
// Headers before ExpiresAt (the transfer must end by ExpiresAt plus the
// store's expiry grace). The URL may be tried again until a PUT stores the
// bytes; then it is used up.
type Upload struct {
	ID        string
	URL       string
	Method    string
	Headers   map[string]string
	ExpiresAt time.Time
}

// CreateUpload validates req, records a pending upload and returns its
// pre-signed URL. The issue is audited; if the audit log refuses, no URL is
// handed out.
func (s *Store) CreateUpload(ctx context.Context, req UploadRequest) (Upload, error) {
	rec, err := s.limits.newUpload(req, s.now())
	if err != nil {
		return Upload{}, err
	}
	id := rec.ID
	url := s.cfg.Signer.Sign(presign.Params{
		Method: http.MethodPut, Key: uploadKeyPrefix + id, Size: rec.Size,
		SHA256: rec.SHA256, ID: id, Expires: rec.ExpiresAt,
	})

	// A fresh id: no other request touches this record, so no lock.
	if err := s.saveUpload(rec); err != nil {
		return Upload{}, fmt.Errorf("create upload: %w", err)
	}
	err = s.record(ctx, rec.issuedEvent())
	if err != nil {
		// Fail closed: an unaudited URL must not exist.
		_ = os.Remove(s.uploadPath(id))
		return Upload{}, fmt.Errorf("create upload: audit: %w", err)
	}
	return Upload{
		ID: id, URL: url, Method: http.MethodPut,
		// Only what a client must set itself: Content-Length (or chunked
		// transfer) is its HTTP library's business, and some (Java's
		// HttpClient) refuse to be told it.
		Headers:   map[string]string{"Content-Type": "application/wasm"},
		ExpiresAt: rec.ExpiresAt,
	}, nil
}

// httpError is a failure of the upload endpoint: status and a one-line
// message for the client, which is also the reason recorded for a refused
// body. retry, if set, is sent as Retry-After (seconds).
type httpError struct {
	status int
	msg    string
	retry  time.Duration
}

// ServeHTTP is the pre-signed upload endpoint: PUT
// /v1/objects/uploads/<id>?X-Udfhost-…. The URL is verified and the body
// must be exactly the declared bytes, with Content-Length or chunked; on
// success the bytes are staged for Commit and the URL is used up. A body
// that is refused (wrong size or digest, cut off, stalled, the URL expired
// during the transfer) stores nothing and leaves the URL usable until it
// expires. One PUT at a time per upload: another one meanwhile gets 409.
// Errors are answered with one line of plain text.
func (s *Store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", http.MethodPut)
		http.Error(w, "method "+r.Method+" not allowed: uploads use PUT", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	p, err := s.cfg.Signer.Verify(r.Method, r.URL, s.now())
	if err == nil && p.Key != uploadKeyPrefix+p.ID {
		err = fmt.Errorf("%w: URL does not name an upload", presign.ErrMalformed)
	}
	if err == nil && !validUploadID(p.ID) {
		err = fmt.Errorf("%w: bad upload id", presign.ErrMalformed)
	}
	if err != nil {
		msg, class := verifyMessage(err)
		// Not tied to an upload: the id in a URL that does not verify is
		// the client's word only. Account for the denial under its class
		// (the detail is the client's text, and would make every forged
		// URL a group of its own); answer 403 either way.
		s.deny(ctx, r.RemoteAddr, "upload-url", class)
		http.Error(w, msg, http.StatusForbidden)
		return
	}

	rec, herr := s.claimUpload(p)
	if herr != nil {
		switch {
		case herr.status == http.StatusConflict && herr.retry > 0:
			// Another PUT of this upload is under way: most likely a
			// client retrying while its first attempt still runs. The
			// credential is fine; the refusal is accounted for.
			_ = s.record(ctx, audit.Event{
				Type: audit.TypeUploadRejected, Actor: rec.Actor, Resource: "upload/" + p.ID,
				Decision: audit.Deny, Reason: herr.msg, RequestID: rec.RequestID,
				Details: map[string]string{"remote": r.RemoteAddr},
			})
		case herr.status < 500:
			// A verified URL refused for its state, most often a replay of
			// a used one: a credential misuse like a forged or expired
			// URL. The upload itself is untouched; the record names it
			// because a verified id is the host's, not the client's word.
			s.deny(ctx, r.RemoteAddr, "upload/"+p.ID, herr.msg)
		}
		writeError(w, herr)
		return
	}
	defer s.releaseClaim(rec.ID)
	// Once the body is in, the request's context ends when the client
	// closes its side (a half-close after the last byte is legal HTTP/1.1)
	// or goes away: the store and its audit record must complete, or be
	// refused, all the same.
	bg := context.WithoutCancel(ctx)
	if herr := s.receive(bg, w, r, rec); herr != nil {
		s.refuseBody(bg, rec, herr.msg, r.RemoteAddr)
		if herr.status == http.StatusRequestEntityTooLarge || herr.status == http.StatusRequestTimeout {
			w.Header().Set("Connection", "close")
		}
		if herr.status == http.StatusRequestEntityTooLarge {
			drainOverrun(r, rec.Size)
		}
		writeError(w, herr)
		return
	}
	w.Header().Set("ETag", `"`+rec.SHA256+`"`)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "upload %s received: %d bytes\n", rec.ID, rec.Size)
}

func writeError(w http.ResponseWriter, herr *httpError) {
	if herr.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((herr.retry+time.Second-1)/time.Second)))
	}
	http.Error(w, herr.msg, herr.status)
}

// verifyMessage returns the answer to a URL that does not verify, and its
// class: the same words without the client's own text (which only a
// malformed URL's answer carries). Neither ever contains the signature.
func verifyMessage(err error) (msg, class string) {
	switch {
	case errors.Is(err, presign.ErrExpired):
		class = "upload URL expired"
	case errors.Is(err, presign.ErrBadSignature):
		class = "upload URL signature invalid"
	case errors.Is(err, presign.ErrWrongMethod):
		class = "upload URL not valid for this method"
	default:
		class = "upload URL malformed"
		return class + ": " + strings.TrimPrefix(err.Error(), presign.ErrMalformed.Error()+": "), class
	}
	return class, class
}

// claimUpload reserves a pending upload for this request: until
// releaseClaim, any other PUT of it is refused with 409 "upload in
// progress". The claim is in memory only: nothing is stored until the body
// has been verified, so a restart or a refused body leaves the upload
// pending and its URL usable. On a 409 the returned record, if not nil, is
// the upload's, for the audit record.
func (s *Store) claimUpload(p presign.Params) (*uploadRecord, *httpError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.loadUpload(p.ID)
	if errors.Is(err, ErrNotFound) {
		return nil, &httpError{status: http.StatusNotFound, msg: "upload " + p.ID + " not found"}
	}
	if err != nil {
		return nil, &httpError{status: http.StatusInternalServerError, msg: "upload record unreadable"}
	}
	if rec.Size != p.Size || rec.SHA256 != p.SHA256 || !rec.ExpiresAt.Equal(p.Expires) {
		return nil, &httpError{status: http.StatusForbidden, msg: "upload URL does not match the upload"}
	}
	if rec.State != statePending {
		return nil, &httpError{status: http.StatusConflict, msg: "upload URL already used"}
	}
	if _, busy := s.receiving[rec.ID]; busy {
		// Retry-After: by then the other PUT has finished or stalled out.
		return rec, &httpError{status: http.StatusConflict, msg: "upload in progress: another PUT of this upload is under way", retry: s.uploadIdle()}
	}
	s.receiving[rec.ID] = struct{}{}
	return rec, nil
}

// maxDrain bounds what drainOverrun reads of a refused body.
const maxDrain = 8 << 20

// drainOverrun reads and drops the body of a PUT refused as too large
// before the answer is written, when the body is at most maxDrain bytes
// over the upload's size. Most clients (curl, Go's and Python's HTTP
// clients without Expect: 100-continue) write the whole body before they
// read the answer; closing the connection under them turns the 413 into
// a reset, and they never learn why. A larger overrun is not worth the
// bytes: it gets the reset.
func drainOverrun(r *http.Request, size int64) {
	if r.ContentLength <= 0 || r.ContentLength-size > maxDrain {
		return
	}
	io.Copy(io.Discard, io.LimitReader(r.Body, r.ContentLength))
}

// releaseClaim ends the claim of claimUpload.
func (s *Store) releaseClaim(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.receiving, id)
}

// receive streams the body into a temporary file, checks size and digest,
// audits and stages it, and marks the upload received. On error nothing is
// left on disk and the upload is still pending. ctx must outlive the
// client's side of the connection (see ServeHTTP).
func (s *Store) receive(ctx context.Context, w http.ResponseWriter, r *http.Request, rec *uploadRecord) *httpError {
	// Refuse an announced oversize body before reading any of it.
	if r.ContentLength > s.cfg.MaxSize {
		return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(
			"upload Content-Length %d exceeds the maximum artifact size %d", r.ContentLength, s.cfg.MaxSize)}
	}
	if r.ContentLength > rec.Size {
		return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(
			"upload Content-Length %d exceeds declared size %d", r.ContentLength, rec.Size)}
	}
	// The transfer must end by the URL's expiry plus a grace, however
	// steadily it moves: a URL is not a licence to trickle bytes for ever.
	// In wall-clock time, as connection deadlines are.
	grace := s.expiryGrace()
	cutoff := time.Now().Add(rec.ExpiresAt.Add(grace).Sub(s.now()))
	f, err := os.CreateTemp(s.uploadsDir, tmpPrefix+rec.ID+"-*")
	if err != nil {
		return &httpError{status: http.StatusInternalServerError, msg: "could not stage the upload"}
	}
	tmp := f.Name()
	staged := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !staged {
			os.Remove(tmp)
		}
	}()

	h := sha256.New()
	idle := s.uploadIdle()
	body := http.MaxBytesReader(w, newIdleReader(w, r.Body, idle, cutoff), rec.Size+1)
	n, err := io.Copy(io.MultiWriter(f, h), body)
	// What follows may take a while (fsync, audit); the server's own
	// read of the connection must not time out meanwhile.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	expired := func() *httpError {
		return &httpError{status: http.StatusRequestTimeout, msg: fmt.Sprintf(
			"upload URL expired during the transfer: %d of %d bytes arrived by its expiry (%s) plus the %s grace",
			n, rec.Size, rec.ExpiresAt.Format(time.RFC3339), grace)}
	}
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr) || n > rec.Size:
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("upload size exceeds declared size %d", rec.Size)}
	case errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(cutoff):
		return expired()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &httpError{status: http.StatusRequestTimeout, msg: fmt.Sprintf(
			"upload stalled: no data for %s after %d of %d bytes", idle, n, rec.Size)}
	case err != nil:
		return &httpError{status: http.StatusBadRequest, msg: "upload body could not be read: " + err.Error()}
	case n != rec.Size:
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("upload size %d does not match declared size %d", n, rec.Size)}
	case time.Now().After(cutoff):
		return expired() // the last bytes came in after the cut-off
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rec.SHA256 {
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("upload sha256 mismatch: declared %s, got %s", rec.SHA256, got)}
	}
	if err := f.Sync(); err != nil {
		return &httpError{status: http.StatusInternalServerError, msg: "could not stage the upload"}
	}
	err = f.Close()
	f = nil
	if err != nil {
		return &httpError{status: http.StatusInternalServerError, msg: "could not stage the upload"}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Audit first: bytes the log does not know about are not kept.
	err = s.record(ctx, audit.Event{
		Type: audit.TypeUploadReceived, Actor: rec.Actor, Resource: "upload/" + rec.ID,
		Decision: audit.Allow, RequestID: rec.RequestID,
		Details: map[string]string{
			"size": strconv.FormatInt(n, 10), "sha256": rec.SHA256, "remote": r.RemoteAddr,
		},
	})
	if err != nil {
		return &httpError{status: http.StatusInternalServerError, msg: "audit log unavailable: upload refused"}
	}
	// From here on a failure undoes the staging and says so in the log,
	// which must not claim an upload the store does not have.
	undo := func(err error) *httpError {
		os.Remove(s.stagedPath(rec.ID))
		rec.State = statePending
		_ = s.saveUpload(rec) // in case only the directory sync failed
		_ = s.record(ctx, audit.Event{
			Type: audit.TypeUploadReceived, Actor: rec.Actor, Resource: "upload/" + rec.ID,
			Decision: audit.Error, RequestID: rec.RequestID,
			Reason: "upload failed after it was recorded; nothing was kept: " + err.Error(),
		})
		return &httpError{status: http.StatusInternalServerError, msg: "could not record the upload"}
	}
	if err := os.Rename(tmp, s.stagedPath(rec.ID)); err != nil {
		return undo(fmt.Errorf("stage upload %s: %w", rec.ID, err))
	}
	staged = true
	rec.State = stateReceived
	err = s.saveUpload(rec)
	if err == nil {
		err = atomicfile.SyncDir(s.uploadsDir)
	}
	if err != nil {
		return undo(err)
	}
	return nil
}

// DefaultUploadIdle is how long an upload body may make no progress
// before it is refused, when Config.UploadIdle is zero. A stall that long
// is a broken or hostile client: without a bound, a half-sent body would
// hold a connection, a temporary file and its upload for ever.
const DefaultUploadIdle = 10 * time.Second

// DefaultExpiryGrace is how long after its URL expired an upload body may
// still be arriving, when Config.ExpiryGrace is zero: a transfer that
// started in time is not cut the very moment the URL expires, but it ends
// at the latest ExpiresAt + DefaultExpiryGrace.
const DefaultExpiryGrace = 5 * time.Second

func (s *Store) uploadIdle() time.Duration {
	if s.cfg.UploadIdle > 0 {
		return s.cfg.UploadIdle
	}
	return DefaultUploadIdle
}

func (s *Store) expiryGrace() time.Duration {
	if s.cfg.ExpiryGrace > 0 {
		return s.cfg.ExpiryGrace
	}
	return DefaultExpiryGrace
}

// idleReader moves the connection's read deadline idle into the future
// each time the body makes progress, but never past cutoff: a slow upload
// that keeps moving goes on until cutoff, a stalled one fails with
// os.ErrDeadlineExceeded.
type idleReader struct {
	io.ReadCloser
	rc     *http.ResponseController
	idle   time.Duration
	cutoff time.Time
	// ok is false when the connection has no deadlines (a ResponseWriter
	// that does not expose them); receive's own check of the cut-off
	// after the body then still refuses a late one.
	ok bool
}

func newIdleReader(w http.ResponseWriter, r io.ReadCloser, idle time.Duration, cutoff time.Time) *idleReader {
	ir := &idleReader{ReadCloser: r, rc: http.NewResponseController(w), idle: idle, cutoff: cutoff}
	ir.ok = ir.rc.SetReadDeadline(ir.deadline()) == nil
	return ir
}

func (ir *idleReader) deadline() time.Time {
	if d := time.Now().Add(ir.idle); d.Before(ir.cutoff) {
		return d
	}
	return ir.cutoff
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.ReadCloser.Read(p)
	if n > 0 && ir.ok {
		ir.rc.SetReadDeadline(ir.deadline())
	}
	return n, err
}

// refuseBody audits a refused body. Nothing was stored, so the upload stays
// pending and its URL usable until it expires.
func (s *Store) refuseBody(ctx context.Context, rec *uploadRecord, reason, remote string) {
	// The refusal stands whether or not the log takes it; there is
	// nothing further to refuse.
	_ = s.record(ctx, audit.Event{
		Type: audit.TypeUploadRejected, Actor: rec.Actor, Resource: "upload/" + rec.ID,
		Decision: audit.Deny, Reason: reason, RequestID: rec.RequestID,
		Details: map[string]string{"remote": remote},
	})
}

func (s *Store) loadUpload(id string) (*uploadRecord, error) {
	b, err := os.ReadFile(s.uploadPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missingUpload(id)
	}
	if err != nil {
		return nil, fmt.Errorf("read upload %s: %w", id, err)
	}
	var rec uploadRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("read upload %s: %w", id, err)
	}
	if rec.ID != id {
		return nil, fmt.Errorf("read upload %s: record names %q", id, rec.ID)
	}
	return &rec, nil
}

func (s *Store) saveUpload(rec *uploadRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("save upload %s: %w", rec.ID, err)
	}
	if err := atomicfile.WriteFile(s.uploadPath(rec.ID), append(b, '\n'), filePerm); err != nil {
		return fmt.Errorf("save upload %s: %w", rec.ID, err)
	}
	return nil
}
