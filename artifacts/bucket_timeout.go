package artifacts

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/udfhost/udfhost/internal/s3store"
)

// DefaultRequestTimeout bounds one request to the bucket when
// BucketConfig.RequestTimeout is zero.
const DefaultRequestTimeout = time.Minute

// timeoutBucket bounds every request to a Bucket: a bucket that does not
// answer in time is a store failure (ErrUnavailable, "no answer within"),
// not the caller's deadline running out. Pre-signing is local and passes
// through.
type timeoutBucket struct {
	Bucket
	d time.Duration
}

// call runs f with a context that ends after t.d, and says so if that is
// why it failed.
func (t timeoutBucket) call(ctx context.Context, f func(context.Context) error) error {
	c, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	err := f(c)
	if err != nil && ctx.Err() == nil && c.Err() != nil {
		return fmt.Errorf("no answer within %s: %v", t.d, err)
	}
	return err
}

func (t timeoutBucket) Head(ctx context.Context, key string) (size int64, etag string, err error) {
	err = t.call(ctx, func(c context.Context) (e error) { size, etag, e = t.Bucket.Head(c, key); return })
	return size, etag, err
}

func (t timeoutBucket) Get(ctx context.Context, key string, w io.WriterAt) (n int64, err error) {
	err = t.call(ctx, func(c context.Context) (e error) { n, e = t.Bucket.Get(c, key, w); return })
	return n, err
}

func (t timeoutBucket) Copy(ctx context.Context, src, srcETag, dst string) error {
	return t.call(ctx, func(c context.Context) error { return t.Bucket.Copy(c, src, srcETag, dst) })
}

func (t timeoutBucket) Delete(ctx context.Context, key string) error {
	return t.call(ctx, func(c context.Context) error { return t.Bucket.Delete(c, key) })
}

func (t timeoutBucket) DeleteIfMatch(ctx context.Context, key, etag string) error {
	return t.call(ctx, func(c context.Context) error { return t.Bucket.DeleteIfMatch(c, key, etag) })
}

func (t timeoutBucket) PutIfAbsent(ctx context.Context, key string, body []byte) (etag string, err error) {
	err = t.call(ctx, func(c context.Context) (e error) { etag, e = t.Bucket.PutIfAbsent(c, key, body); return })
	return etag, err
}

func (t timeoutBucket) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (tag string, err error) {
	err = t.call(ctx, func(c context.Context) (e error) { tag, e = t.Bucket.PutIfMatch(c, key, body, etag); return })
	return tag, err
}

func (t timeoutBucket) GetRecord(ctx context.Context, key string, limit int64) (body []byte, etag string, err error) {
	err = t.call(ctx, func(c context.Context) (e error) { body, etag, e = t.Bucket.GetRecord(c, key, limit); return })
	return body, etag, err
}

func (t timeoutBucket) List(ctx context.Context, prefix string) (objs []s3store.Object, err error) {
	err = t.call(ctx, func(c context.Context) (e error) { objs, e = t.Bucket.List(c, prefix); return })
	return objs, err
}

// downloadURL is s3store.DownloadURL bounded as a bucket request.
func (t timeoutBucket) downloadURL(ctx context.Context, url string, w io.WriterAt, limit int64) (n int64, err error) {
	err = t.call(ctx, func(c context.Context) (e error) { n, e = s3store.DownloadURL(c, url, w, limit); return })
	return n, err
}
