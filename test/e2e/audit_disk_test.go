package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/jsonrows"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// A full disk under the audit log, a 256 KiB tmpfs mounted in the
// server's private mount namespace: every audited action is refused
// UNAVAILABLE, saying the audit log cannot be written, with nothing of it
// done (no URL handed out, no artifact or function registered, no batch
// run); the log stays intact; once there is space the same calls succeed,
// the invocations refused and run meanwhile are in a summary, and the log
// verifies.
func TestAuditDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	data := filepath.Join(t.TempDir(), "data")
	d := serveOn(t, data, `mkdir -p "$DATA/audit" && mount -t tmpfs -o size=256k udfhost-e2e-audit "$DATA/audit"`)
	ctx := d.ctx()
	arts, fns, inv := d.artifacts(), udfhostv1.NewFunctionServiceClient(d.conn), d.invoker()
	add, err := os.ReadFile(wasm["add"])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(add)
	// The calls made while the disk is full send a long request id, so
	// their records are longer than those that filled the log's last page.
	full := metadata.AppendToOutgoingContext(ctx, "x-request-id", "disk-full-"+strings.Repeat("x", 100))
	newURL := func(ctx context.Context) (*udfhostv1.CreateUploadURLResponse, error) {
		return arts.CreateUploadURL(ctx, &udfhostv1.CreateUploadURLRequest{Size: int64(len(add)), Sha256: hex.EncodeToString(sum[:])})
	}
	put := func(up *udfhostv1.CreateUploadURLResponse) {
		t.Helper()
		req, _ := http.NewRequest(up.Method, up.Url, bytes.NewReader(add))
		for k, v := range up.Headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("PUT: %s", resp.Status)
		}
	}
	createFn := func(ctx context.Context, name, artifact string) error {
		_, err := fns.CreateFunction(ctx, &udfhostv1.CreateFunctionRequest{Name: name, ArtifactId: artifact, Export: "add", Signature: "(BIGINT, BIGINT) -> BIGINT"})
		return err
	}
	invoke := func(ctx context.Context) error {
		b := jsonrows.NewBuilder([]udfhostv1.SqlType{udfhostv1.SqlType_TYPE_BIGINT, udfhostv1.SqlType_TYPE_BIGINT})
		b.AddLine([]byte("[2, 3]"))
		resp, err := inv.Invoke(ctx, &udfhostv1.InvokeRequest{Function: "add0", Batch: b.Batch()})
		if err == nil && jsonrows.Values(resp)[0] != int64(5) {
			return fmt.Errorf("add0(2, 3) = %v", jsonrows.Values(resp))
		}
		return err
	}
	counts := func() (int, int) {
		t.Helper()
		a, err := arts.ListArtifacts(ctx, &udfhostv1.ListArtifactsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		f, err := fns.ListFunctions(ctx, &udfhostv1.ListFunctionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return len(a.Artifacts), len(f.Functions)
	}

	// Before: an artifact with a function, invoked; an upload received
	// but not committed.
	up, err := newURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put(up)
	art, err := arts.CommitUpload(ctx, &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
	if err != nil {
		t.Fatal(err)
	}
	if err := createFn(ctx, "add0", art.Id); err != nil {
		t.Fatal(err)
	}
	batches := 0
	for range 3 {
		if err := invoke(ctx); err != nil {
			t.Fatal(err)
		}
		batches++
	}
	pending, err := newURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put(pending)
	artifactsBefore, functionsBefore := counts()

	// Fill the filesystem, then take upload URLs until the log's last
	// page is full too.
	filler := d.path(filepath.Join(data, "audit", "filler"))
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for _, err = f.Write(make([]byte, 4096)); err == nil; _, err = f.Write(make([]byte, 4096)) {
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fill: %v", err)
	}
	for range 50 {
		if _, err = newURL(ctx); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("50 upload URLs on a full disk: the log never filled up")
	}
	// wantRefused checks err is UNAVAILABLE saying why.
	wantRefused := func(what string, err error) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "audit log cannot be written") || !strings.Contains(st.Message(), "no space left on device") {
			t.Errorf("%s on a full disk: %v; want UNAVAILABLE saying the audit log cannot be written for want of space", what, err)
		}
	}
	wantRefused("CreateUploadURL", err)

	got, err := newURL(full)
	wantRefused("CreateUploadURL", err)
	if got != nil {
		t.Errorf("CreateUploadURL on a full disk handed out %s", got.Url)
	}
	_, err = arts.CommitUpload(full, &udfhostv1.CommitUploadRequest{UploadId: pending.UploadId})
	wantRefused("CommitUpload", err)
	wantRefused("CreateFunction", createFn(full, "add1", art.Id))
	for range 2 {
		wantRefused("Invoke", invoke(full))
		batches++
	}
	if _, err := fns.GetFunction(ctx, &udfhostv1.GetFunctionRequest{Name: "add1"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetFunction of the function refused: %v, want NOT_FOUND", err)
	}
	if a, f := counts(); a != artifactsBefore || f != functionsBefore {
		t.Errorf("after the refusals %d artifacts and %d functions, want %d and %d as before", a, f, artifactsBefore, functionsBefore)
	}
	log := d.path(filepath.Join(data, "audit", "audit.log"))
	if out, errOut, code := d.cli("", "audit", "verify", "--file", log); code != 0 {
		t.Fatalf("verify while full: exit %d: %s%s", code, out, errOut)
	}
	// The CLI's upload too, at whichever audited step finds the disk full:
	// the upload URL (UNAVAILABLE, naming the full disk) or the PUT (500).
	if _, errOut, code := d.cli("", "artifact", "upload", wasm["add"]); code == 0 || !strings.Contains(errOut, "no space left on device") && !strings.Contains(errOut, "audit log unavailable") {
		t.Errorf("udfhost artifact upload on a full disk: exit %d, %q; want refused for want of space", code, errOut)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Space again: the invocation first (it writes the summaries it was
	// refused for), then the same calls as above.
	if err := invoke(full); err != nil {
		t.Fatalf("Invoke once there is space: %v", err)
	}
	batches++
	if _, err := newURL(full); err != nil {
		t.Errorf("CreateUploadURL once there is space: %v", err)
	}
	if _, err := arts.CommitUpload(full, &udfhostv1.CommitUploadRequest{UploadId: pending.UploadId}); err != nil {
		t.Errorf("CommitUpload once there is space: %v", err)
	}
	if err := createFn(full, "add1", art.Id); err != nil {
		t.Errorf("CreateFunction once there is space: %v", err)
	}
	if _, errOut, code := d.cli("", "artifact", "upload", wasm["add"]); code != 0 {
		t.Errorf("udfhost artifact upload once there is space: exit %d: %s", code, errOut)
	}
	// The audit directory must be read before the server exits: its
	// tmpfs goes with it. The log last, so that nothing else in the
	// directory (checkpoints) covers records the copy lacks.
	auditDir := filepath.Join(data, "audit")
	entries, err := os.ReadDir(d.path(auditDir))
	if err != nil {
		t.Fatal(err)
	}
	saved := map[string][]byte{}
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != "audit.log" {
			if saved[e.Name()], err = os.ReadFile(d.path(filepath.Join(auditDir, e.Name()))); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	saved["audit.log"] = want
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// Back where the tmpfs was, on the data directory's own filesystem:
	// without the stop record, written after the copy, the log must
	// verify as it is.
	for name, b := range saved {
		if err := os.WriteFile(filepath.Join(auditDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A copy of a live log: its newest records are not checkpointed yet
	// (the final checkpoint is written at the stop, on the tmpfs that
	// went with the server), so the chain is what can be checked here.
	if out, errOut, code := d.cli("", "audit", "verify", "--file", filepath.Join(auditDir, "audit.log")); code != 0 {
		t.Fatalf("verify after space came back: exit %d: %s%s", code, out, errOut)
	}
	// Every batch, run or refused, is in a summary by now.
	var total, refused int
	for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		var r struct {
			Type     string            `json:"type"`
			Resource string            `json:"resource"`
			Details  map[string]string `json:"details"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Type == "invocation.summary" && r.Resource == "function/default/add0" {
			n, _ := strconv.Atoi(r.Details["batches"])
			m, _ := strconv.Atoi(r.Details["refused_batches"])
			total, refused = total+n, refused+m
		}
	}
	if total != batches || refused != 2 {
		t.Errorf("summaries count %d batches, %d refused; want %d and the 2 refused on the full disk", total, refused, batches)
	}
}

// A crash mid-write leaves an incomplete final line: `audit verify` says so
// and what to do, serve starts anyway, removes it, records the repair, and
// the log verifies again.
func TestServeRepairsTornAuditLine(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	d := serveOn(t, data, "")
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	log := filepath.Join(data, "audit", "audit.log")
	before, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	next := bytes.Count(before, []byte("\n")) + 1
	torn := `{"seq":` + strconv.Itoa(next) + `,"time":"2026-12-01T`
	if err := os.WriteFile(log, append(bytes.Clone(before), torn...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := d.cli("", "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "an incomplete record") || !strings.Contains(errOut, "serve") {
		t.Fatalf("verify of a torn log: exit %d, %q; want exit 1 saying serve repairs it", code, errOut)
	}

	d = serveOn(t, data, "")
	if err := d.stop(); err != nil {
		t.Fatalf("stop after repair: %v", err)
	}
	if out, errOut, code := d.cli("", "audit", "verify"); code != 0 {
		t.Fatalf("verify after repair: exit %d: %s%s", code, out, errOut)
	}
	after, _ := os.ReadFile(log)
	if !bytes.HasPrefix(after, before) {
		t.Fatal("the repair changed complete records")
	}
	first, _, _ := bytes.Cut(after[len(before):], []byte("\n"))
	for _, want := range []string{`"type":"audit.repaired"`, `"bytes_removed":"` + strconv.Itoa(len(torn)) + `"`, `"offset":"` + strconv.Itoa(len(before)) + `"`} {
		if !bytes.Contains(first, []byte(want)) {
			t.Errorf("first record after the repair %s lacks %s", first, want)
		}
	}
}
