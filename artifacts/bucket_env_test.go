package artifacts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/udfhost/udfhost/internal/s3store"
	"github.com/udfhost/udfhost/internal/s3store/s3test"
)

const bucketPrefix = "pool-a"

// bucketEnv is a real versitygw and a bucket prefix on it that several
// BucketStores (hosts) share; every host audits into aud.
type bucketEnv struct {
	t     testing.TB
	g     *s3test.Gateway
	s3    *s3store.Store
	aud   *fakeAuditor
	clock *fakeClock
	ctx   context.Context
}

func newBucketEnv(t testing.TB) *bucketEnv {
	t.Helper()
	g := s3test.Start(t)
	st, err := s3store.New(context.Background(), s3store.Options{
		Bucket: s3test.Bucket, Prefix: bucketPrefix, Endpoint: g.Endpoint, Region: s3test.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &bucketEnv{
		t: t, g: g, s3: st, aud: &fakeAuditor{}, ctx: context.Background(),
		clock: &fakeClock{t: time.Now()},
	}
}

// host opens a BucketStore for host id with a cache of its own.
func (e *bucketEnv) host(id string) *BucketStore {
	e.t.Helper()
	return e.hostWith(BucketConfig{HostID: id})
}

func (e *bucketEnv) hostWith(cfg BucketConfig) *BucketStore {
	e.t.Helper()
	if cfg.Bucket == nil {
		cfg.Bucket = e.s3
	}
	if cfg.Audit == nil {
		cfg.Audit = e.aud
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = e.t.TempDir()
	}
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	b, err := NewBucket(e.ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *bucketEnv) createUpload(b *BucketStore, data []byte) Upload {
	e.t.Helper()
	up, err := b.CreateUpload(e.ctx, UploadRequest{
		Env: "default", Name: "my-udf", Size: int64(len(data)), SHA256: sha(data), Actor: "admin", RequestID: "req-1",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return up
}

func (e *bucketEnv) putOK(up Upload, data []byte) {
	e.t.Helper()
	if code, msg := s3test.Put(e.t, up.URL, up.Headers, data); code != http.StatusOK {
		e.t.Fatalf("PUT: %d %s", code, msg)
	}
}

// upload creates, PUTs and commits data through b.
func (e *bucketEnv) upload(b *BucketStore, data []byte) *Artifact {
	e.t.Helper()
	up := e.createUpload(b, data)
	e.putOK(up, data)
	art, err := b.Commit(e.ctx, up.ID, "admin", "req-2")
	if err != nil {
		e.t.Fatal(err)
	}
	return art
}

// keys lists the bucket under the prefix (without it), by the test's own
// client.
func (e *bucketEnv) keys(under string) []string {
	e.t.Helper()
	out, err := e.g.Client().ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(s3test.Bucket), Prefix: aws.String(bucketPrefix + "/" + under),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), bucketPrefix+"/"))
	}
	sort.Strings(keys)
	return keys
}

// object reads key (under the prefix) by the test's own client.
func (e *bucketEnv) object(key string) []byte {
	e.t.Helper()
	out, err := e.g.Client().GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(s3test.Bucket), Key: aws.String(bucketPrefix + "/" + key)})
	if err != nil {
		e.t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// replace overwrites key behind the hosts' backs.
func (e *bucketEnv) replace(key string, body []byte) {
	e.t.Helper()
	_, err := e.g.Client().PutObject(e.ctx, &s3.PutObjectInput{
		Bucket: aws.String(s3test.Bucket), Key: aws.String(bucketPrefix + "/" + key), Body: bytes.NewReader(body),
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// assertNoArtifacts checks that no artifact record exists in the bucket.
func (e *bucketEnv) assertNoArtifacts() {
	e.t.Helper()
	if k := e.keys(bucketMeta); len(k) != 0 {
		e.t.Fatalf("artifact records in the bucket: %v", k)
	}
}

func (e *bucketEnv) uploadRecord(id string) *uploadRecord {
	e.t.Helper()
	rec := new(uploadRecord)
	b := &BucketStore{bucket: timeoutBucket{Bucket: e.s3, d: time.Minute}, name: e.s3.String()}
	if _, err := b.readRecord(e.ctx, "test", uploadRecordKey(id), rec); err != nil {
		e.t.Fatal(err)
	}
	return rec
}

func wantUnavailable(t *testing.T, err error, substrs ...string) {
	t.Helper()
	wantErr(t, err, ErrUnavailable, append([]string{"artifact store s3://" + s3test.Bucket + "/" + bucketPrefix + "/"}, substrs...)...)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUploadState) {
		t.Fatalf("err %v wraps a second sentinel", err)
	}
}
