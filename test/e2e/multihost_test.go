package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/internal/jsonrows"
	"github.com/udfhost/udfhost/internal/s3store/s3test"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// converge is how long a change made through one host may take to reach
// another (issue 17: within 2 s).
const converge = 2 * time.Second

// storePrefix is the key prefix the hosts of a test share in the bucket.
const storePrefix = "pool"

// storeName is how the hosts name their store in messages.
const storeName = "s3://" + s3test.Bucket + "/" + storePrefix + "/"

// bucketHost starts `udfhost serve` on data with the store on g's bucket;
// the credentials reach it through the standard AWS chain (environment).
func bucketHost(t *testing.T, g *s3test.Gateway, data string) *server {
	t.Helper()
	for _, kv := range g.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return serveWith(t, data, "", "--store", "s3://"+s3test.Bucket+"/"+storePrefix, "--s3-endpoint", g.Endpoint, "--s3-path-style")
}

// twoHosts is a gateway and two hosts on its bucket, each with its own
// data directory and ports.
func twoHosts(t *testing.T) (*s3test.Gateway, *server, *server) {
	t.Helper()
	g := s3test.Start(t)
	a := bucketHost(t, g, filepath.Join(t.TempDir(), "a"))
	b := bucketHost(t, g, filepath.Join(t.TempDir(), "b"))
	return g, a, b
}

// object is the bytes at key in the gateway's bucket (under the hosts'
// prefix), read from its directory; nil if absent.
func object(t *testing.T, g *s3test.Gateway, key string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.Root, s3test.Bucket, storePrefix, key))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keys lists the objects under dir (a key prefix ending in '/').
func keys(t *testing.T, g *s3test.Gateway, dir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(g.Root, s3test.Bucket, storePrefix)
	filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func digestOf(t *testing.T, path string) (string, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), b
}

// addOn invokes add(40, 2) through s; a result other than 42 is an error
// in the response.
func addOn(s *server) (*udfhostv1.InvokeResponse, error) {
	ctx, cancel := context.WithTimeout(s.ctx(), 30*time.Second)
	defer cancel()
	b := jsonrows.NewBuilder([]udfhostv1.SqlType{udfhostv1.SqlType_TYPE_BIGINT, udfhostv1.SqlType_TYPE_BIGINT})
	if err := b.AddLine([]byte("[40, 2]")); err != nil {
		panic(err)
	}
	resp, err := s.invoker().Invoke(ctx, &udfhostv1.InvokeRequest{Function: "add", Batch: b.Batch()})
	if err == nil && resp.Error == nil {
		if v := jsonrows.Values(resp); len(v) != 1 || v[0] != int64(42) {
			resp.Error = &udfhostv1.BatchError{Message: fmt.Sprintf("add(40, 2) = %v, want 42", v)}
		}
	}
	return resp, err
}

// until polls f every 50 ms until it returns true or d has passed since
// start, and says how long it took.
func until(start time.Time, d time.Duration, f func() bool) (time.Duration, bool) {
	for {
		if f() {
			return time.Since(start), true
		}
		if time.Since(start) > d {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBucketHostsServeEachOther: two hosts on one bucket. An upload
// through the CLI of A and one through a plain HTTP PUT on B land under
// their content-addressed keys; a function created on A is invokable on B
// within 2 s; deleted on B, A refuses it within 2 s; each host's HTTP
// endpoint says uploads go to the store; each audit log names its host.
func TestBucketHostsServeEachOther(t *testing.T) {
	g, a, b := twoHosts(t)

	// The CLI's upload, through A.
	hexAdd, addBytes := digestOf(t, wasm["add"])
	addID := a.upload("add")
	if got := object(t, g, "artifacts/sha256/"+hexAdd); !bytes.Equal(got, addBytes) {
		t.Fatalf("artifacts/sha256/%s holds %d bytes, want the module's %d", hexAdd, len(got), len(addBytes))
	}

	// A plain PUT with only the headers the response names, through B.
	hexAff, affBytes := digestOf(t, wasm["affine_direct"])
	up, err := b.artifacts().CreateUploadURL(b.ctx(), &udfhostv1.CreateUploadURLRequest{Size: int64(len(affBytes)), Sha256: hexAff, Name: "affine"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(up.Url, g.Endpoint[len("http://"):]) {
		t.Errorf("upload URL %s does not point at the S3 store %s", up.Url, g.Endpoint)
	}
	req, err := http.NewRequest(up.Method, up.Url, bytes.NewReader(affBytes))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range up.Headers {
		if !strings.EqualFold(k, "Content-Length") {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("plain PUT to the S3 store: %d %s", resp.StatusCode, msg)
	}
	// Committed through the other host: upload URLs travel.
	aff, err := a.artifacts().CommitUpload(a.ctx(), &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
	if err != nil {
		t.Fatalf("commit through A of an upload issued by B: %v", err)
	}
	if got := object(t, g, "artifacts/sha256/"+hexAff); !bytes.Equal(got, affBytes) {
		t.Fatalf("artifacts/sha256/%s holds %d bytes, want the module's %d", hexAff, len(got), len(affBytes))
	}
	if aff.Digest != "sha256:"+hexAff {
		t.Errorf("committed digest %s, want sha256:%s", aff.Digest, hexAff)
	}

	// Create on A, invoke on B.
	a.createFunction("add", addID, "add", "(BIGINT, BIGINT) -> BIGINT")
	created := time.Now()
	took, ok := until(created, converge, func() bool {
		resp, err := addOn(b)
		if status.Code(err) == codes.NotFound {
			return false
		}
		if err != nil || resp.Error != nil {
			t.Fatalf("invoke on B of a function created on A: %v %v", err, resp.GetError())
		}
		return true
	})
	if !ok {
		t.Fatalf("a function created on A was not invokable on B within %s", converge)
	}
	t.Logf("created on A, invoked on B after %s", took)
	if resp, err := addOn(a); err != nil || resp.Error != nil {
		t.Fatalf("invoke on A: %v %v", err, resp.GetError())
	}

	// Delete on B: A refuses within 2 s.
	b.mustCLI("", "function", "delete", "add")
	deleted := time.Now()
	took, ok = until(deleted, converge, func() bool {
		_, err := addOn(a)
		return status.Code(err) == codes.NotFound
	})
	if !ok {
		t.Fatalf("A still serves a function deleted on B %s later", converge)
	}
	t.Logf("deleted on B, refused by A after %s", took)
	// A's pod of it stops: no function of A uses it any more.
	if _, ok := until(deleted, converge, func() bool {
		for _, r := range a.auditRecords() {
			if r.Type == "worker.stopped" && strings.Contains(r.Pod, hexAdd) && r.Reason == "stopped" {
				return true
			}
		}
		return false
	}); !ok {
		t.Errorf("A's pod of the deleted function was not stopped within %s", converge)
	}
	if fns := keys(t, g, "functions/"); len(fns) != 0 {
		t.Errorf("function records left in the bucket: %v", fns)
	}

	// Pre-signed URLs of the hosts' own endpoint are not used.
	for _, s := range []*server{a, b} {
		resp, err := http.Get("http://" + s.http + "/v1/objects/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "uploads go to the S3 store "+storeName) {
			t.Errorf("host HTTP endpoint: %d %q, want 404 saying uploads go to %s", resp.StatusCode, body, storeName)
		}
	}
	hostIDs := map[string]bool{}
	for _, s := range []*server{a, b} {
		id, err := os.ReadFile(filepath.Join(s.data, "host-id"))
		if err != nil {
			t.Fatal(err)
		}
		hostIDs[strings.TrimSpace(string(id))] = true
		if !strings.Contains(s.logs(), "store="+storeName) {
			t.Errorf("the ready line does not name the store %s:\n%s", storeName, s.logs())
		}
	}
	if len(hostIDs) != 2 {
		t.Errorf("the hosts share an id: %v", hostIDs)
	}
}

// TestBucketQuarantineReachesOtherHost: an artifact quarantined by
// violations on A is refused by B, whose own pod of it is stopped from
// serving; a release on B lets both serve it again.
func TestBucketQuarantineReachesOtherHost(t *testing.T) {
	_, a, b := twoHosts(t)
	spinID := a.upload("loop")
	a.createFunction("spin", spinID, "spin", "(BIGINT) -> BIGINT")
	spin := func(s *server, v int64) error {
		_, err := s.invoker().Invoke(s.ctx(), &udfhostv1.InvokeRequest{Function: "spin", Batch: bigints([]int64{v})})
		return err
	}
	// B serves it before the quarantine: its pod runs.
	if _, ok := until(time.Now(), converge, func() bool { return status.Code(spin(b, 5)) != codes.NotFound }); !ok {
		t.Fatal("B never saw the function")
	}
	if err := spin(b, 5); err != nil {
		t.Fatalf("spin(5) on B: %v", err)
	}
	for i := range 3 {
		if err := spin(a, -1); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("looping call %d on A: %v; want DEADLINE_EXCEEDED", i+1, err)
		}
	}
	if err := spin(a, 5); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("A after 3 violations: %v, want FAILED_PRECONDITION", err)
	}
	quarantined := time.Now()
	took, ok := until(quarantined, converge, func() bool {
		err := spin(b, 5)
		return status.Code(err) == codes.FailedPrecondition && strings.Contains(status.Convert(err).Message(), "quarantined")
	})
	if !ok {
		t.Fatalf("B still serves an artifact A quarantined %s later: %v", converge, spin(b, 5))
	}
	t.Logf("quarantined on A, refused by B after %s", took)

	b.mustCLI("", "artifact", "release", spinID)
	if _, ok := until(time.Now(), converge, func() bool { return spin(a, 5) == nil }); !ok {
		t.Fatalf("A still refuses an artifact released on B: %v", spin(a, 5))
	}
}

// TestBucketHostKilledMidCommit: a host killed (SIGKILL) while it commits
// a large module leaves no half-registered artifact: the other host sees
// the artifact whole or not at all, the restarted host too, and a retry
// of the upload works.
func TestBucketHostKilledMidCommit(t *testing.T) {
	g, a, b := twoHosts(t)
	hexUp, body := digestOf(t, wasm["go-upper"])
	up, err := a.artifacts().CreateUploadURL(a.ctx(), &udfhostv1.CreateUploadURLRequest{Size: int64(len(body)), Sha256: hexUp})
	if err != nil {
		t.Fatal(err)
	}
	putS3(t, up, body)
	commitErr := make(chan error, 1)
	go func() {
		_, err := a.artifacts().CommitUpload(a.ctx(), &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
		commitErr <- err
	}()
	// The module takes a while to validate and compile: kill A in it.
	time.Sleep(150 * time.Millisecond)
	a.cmd.Process.Kill()
	<-a.exited
	err = <-commitErr
	t.Logf("commit through the killed host: %v", err)

	whole := func(s *server) {
		t.Helper()
		list, err := s.artifacts().ListArtifacts(s.ctx(), &udfhostv1.ListArtifactsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, art := range list.Artifacts {
			h := strings.TrimPrefix(art.Digest, "sha256:")
			if got := object(t, g, "artifacts/sha256/"+h); !bytes.Equal(got, body) {
				t.Errorf("artifact %s is listed but its bytes are %d, not the module's %d: half-registered", art.Id, len(got), len(body))
			}
		}
	}
	time.Sleep(converge)
	whole(b)
	if len(keys(t, g, "meta/")) == 0 {
		// Killed before the commit point: the other host saw nothing.
		if list, err := b.artifacts().ListArtifacts(b.ctx(), &udfhostv1.ListArtifactsRequest{}); err != nil || len(list.Artifacts) != 0 {
			t.Errorf("no artifact record in the bucket, yet B lists %v (%v)", list.GetArtifacts(), err)
		}
	}
	t.Logf("objects after the kill: %v", keys(t, g, ""))
	a2 := bucketHost(t, g, a.data)
	whole(a2)
	// The same upload again, through the restarted host.
	_, err = a2.artifacts().CommitUpload(a2.ctx(), &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
	t.Logf("the same commit through the restarted host: %v", err)
	if c := status.Code(err); err != nil && c != codes.FailedPrecondition && c != codes.Aborted {
		t.Fatalf("retrying the commit after the restart: %v", err)
	}
	if err != nil {
		// The killed commit's upload cannot be committed again: a new
		// one can.
		a2.upload("go-upper")
	}
	if _, ok := until(time.Now(), converge, func() bool {
		list, err := b.artifacts().ListArtifacts(b.ctx(), &udfhostv1.ListArtifactsRequest{})
		return err == nil && len(list.Artifacts) > 0
	}); !ok {
		t.Fatal("B never saw the artifact committed after the restart")
	}
	whole(b)
	whole(a2)
	for _, k := range keys(t, g, "meta/") {
		if !strings.HasSuffix(k, ".json") {
			t.Errorf("a stray object under meta/: %s", k)
		}
	}
}

// putS3 uploads body to an upload URL with the headers it names.
func putS3(t *testing.T, up *udfhostv1.CreateUploadURLResponse, body []byte) {
	t.Helper()
	req, err := http.NewRequest(up.Method, up.Url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range up.Headers {
		if !strings.EqualFold(k, "Content-Length") {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT to the S3 store: %d %s", resp.StatusCode, msg)
	}
}

// TestBucketStoreDown: with versitygw stopped, a commit and a pod start
// fail with UNAVAILABLE naming the store and register nothing, a pod
// already running keeps serving; once the store is back the same calls
// work, and a host started afresh on the bucket serves everything.
func TestBucketStoreDown(t *testing.T) {
	g, a, b := twoHosts(t)
	a.createFunction("add", a.upload("add"), "add", "(BIGINT, BIGINT) -> BIGINT")
	if resp, err := addOn(a); err != nil || resp.Error != nil {
		t.Fatalf("invoke on A: %v %v", err, resp.GetError())
	}
	// B knows the function but has not started its pod.
	if _, ok := until(time.Now(), converge, func() bool {
		f, err := udfhostv1.NewFunctionServiceClient(b.conn).GetFunction(b.ctx(), &udfhostv1.GetFunctionRequest{Name: "add"})
		return err == nil && f.Name == "add"
	}); !ok {
		t.Fatal("B never saw the function")
	}
	hexAff, affBytes := digestOf(t, wasm["affine_direct"])
	up, err := a.artifacts().CreateUploadURL(a.ctx(), &udfhostv1.CreateUploadURLRequest{Size: int64(len(affBytes)), Sha256: hexAff})
	if err != nil {
		t.Fatal(err)
	}
	putS3(t, up, affBytes)

	g.Stop()
	unavailable := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), storeName) {
			t.Errorf("%s with the store down: %v; want UNAVAILABLE naming %s", what, err, storeName)
		}
	}
	_, err = a.artifacts().CommitUpload(a.ctx(), &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
	unavailable("commit", err)
	_, err = addOn(b)
	unavailable("pod start on B", err)
	if resp, err := addOn(a); err != nil || resp.Error != nil {
		t.Errorf("A's running pod with the store down: %v %v; want it to keep serving", err, resp.GetError())
	}
	if got := keys(t, g, "meta/"); len(got) != 1 {
		t.Errorf("artifact records with the store down: %v, want only add's", got)
	}

	g.Restart()
	if _, ok := until(time.Now(), 30*time.Second, func() bool {
		_, err := a.artifacts().CommitUpload(a.ctx(), &udfhostv1.CommitUploadRequest{UploadId: up.UploadId})
		return err == nil
	}); !ok {
		t.Fatal("the commit never worked again after the store came back")
	}
	if resp, err := addOn(b); err != nil || resp.Error != nil {
		t.Fatalf("pod start on B after the store came back: %v %v", err, resp.GetError())
	}
	if got := object(t, g, "artifacts/sha256/"+hexAff); !bytes.Equal(got, affBytes) {
		t.Errorf("artifacts/sha256/%s: %d bytes, want %d", hexAff, len(got), len(affBytes))
	}

	// A host started afresh serves everything from the bucket.
	c := bucketHost(t, g, filepath.Join(t.TempDir(), "c"))
	if resp, err := addOn(c); err != nil || resp.Error != nil {
		t.Fatalf("invoke on a new host: %v %v", err, resp.GetError())
	}
	list, err := c.artifacts().ListArtifacts(c.ctx(), &udfhostv1.ListArtifactsRequest{})
	if err != nil || len(list.Artifacts) != 2 {
		t.Fatalf("a new host lists %v, %v; want both artifacts", list.GetArtifacts(), err)
	}
}

// TestBucketCreateRaceAcrossHosts: the same function created through two
// hosts at once: exactly one wins, the other is ALREADY_EXISTS, and both
// then serve the winner's.
func TestBucketCreateRaceAcrossHosts(t *testing.T) {
	_, a, b := twoHosts(t)
	id := a.upload("add")
	if _, ok := until(time.Now(), converge, func() bool {
		_, err := b.artifacts().GetArtifact(b.ctx(), &udfhostv1.GetArtifactRequest{Id: id})
		return err == nil
	}); !ok {
		t.Fatal("B never saw the artifact")
	}
	errs := make(chan error, 2)
	for _, s := range []*server{a, b} {
		go func() {
			_, err := udfhostv1.NewFunctionServiceClient(s.conn).CreateFunction(s.ctx(), &udfhostv1.CreateFunctionRequest{
				Name: "add", ArtifactId: id, Export: "add", Signature: "(BIGINT, BIGINT) -> BIGINT",
			})
			errs <- err
		}()
	}
	var won, lost int
	for range 2 {
		switch err := <-errs; status.Code(err) {
		case codes.OK:
			won++
		case codes.AlreadyExists:
			lost++
		default:
			t.Errorf("CreateFunction in the race: %v, want OK or ALREADY_EXISTS", err)
		}
	}
	if won != 1 || lost != 1 {
		t.Fatalf("%d won, %d lost; want exactly one of each", won, lost)
	}
	for _, s := range []*server{a, b} {
		if _, ok := until(time.Now(), converge, func() bool {
			resp, err := addOn(s)
			return err == nil && resp.Error == nil
		}); !ok {
			t.Errorf("a host does not serve the winner's function: %v", s.addr)
		}
	}
}
