package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Head returns key's size and ETag (quotes included, as the server sends
// it), or ErrNotFound.
func (s *Store) Head(ctx context.Context, key string) (size int64, etag string, err error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: s.key(key)})
	if err != nil {
		return 0, "", fmt.Errorf("s3store: head %s: %w", key, classify(err, nil))
	}
	return aws.ToInt64(out.ContentLength), aws.ToString(out.ETag), nil
}

// Get downloads key into w and returns how many bytes it wrote; the
// caller checks them (size, digest) before using any.
func (s *Store) Get(ctx context.Context, key string, w io.WriterAt) (int64, error) {
	n, err := s.dl.download(ctx, w, s.bucket, s.prefix+key)
	if err != nil {
		return n, fmt.Errorf("s3store: get %s: %w", key, classify(err, nil))
	}
	return n, nil
}

// Copy copies src to dst inside the bucket. srcETag, if not empty, is
// the ETag of the version the caller checked (CopySourceIfMatch): if src
// changed since, ErrPreconditionFailed, so what lands at dst is what was
// verified. dst must not exist yet: ErrExists otherwise.
//
// The copy carries If-None-Match: *, which AWS S3 honours on CopyObject;
// versitygw v1.8.0 ignores it there (it overwrites), so dst is also
// checked with a Head first. That leaves a window in which two copies to
// one key both succeed; for content-addressed keys both write the same
// verified bytes.
func (s *Store) Copy(ctx context.Context, src, srcETag, dst string) error {
	if _, _, err := s.Head(ctx, dst); err == nil {
		return fmt.Errorf("s3store: copy %s to %s: %w", src, dst, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("s3store: copy %s to %s: %w", src, dst, err)
	}
	in := &s3.CopyObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         s.key(dst),
		CopySource:  aws.String(url.PathEscape(s.bucket) + "/" + escapeKey(s.prefix+src)),
		IfNoneMatch: aws.String("*"),
	}
	if srcETag != "" {
		in.CopySourceIfMatch = aws.String(srcETag)
	}
	if _, err := s.client.CopyObject(ctx, in); err != nil {
		// A 412 can be either condition; a source that changed is the
		// one versitygw reports, and the Head above caught dst.
		return fmt.Errorf("s3store: copy %s to %s: %w", src, dst, classify(err, ErrPreconditionFailed))
	}
	return nil
}

// Delete removes key; an absent key is not an error (S3 says so too).
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: s.key(key)})
	if err != nil {
		return fmt.Errorf("s3store: delete %s: %w", key, classify(err, nil))
	}
	return nil
}

// PutIfAbsent writes a small record only if key does not exist yet and
// returns its ETag; ErrExists if another writer created it first.
func (s *Store) PutIfAbsent(ctx context.Context, key string, body []byte) (string, error) {
	out, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           s.key(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		IfNoneMatch:   aws.String("*"),
	})
	if err != nil {
		return "", fmt.Errorf("s3store: create %s: %w", key, classify(err, ErrExists))
	}
	return aws.ToString(out.ETag), nil
}

// PutIfMatch replaces a small record only if its ETag is still etag and
// returns the new ETag; ErrPreconditionFailed if another writer changed
// it since, ErrNotFound if it was deleted.
func (s *Store) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	out, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           s.key(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		IfMatch:       aws.String(etag),
	})
	if err != nil {
		return "", fmt.Errorf("s3store: update %s: %w", key, classify(err, ErrPreconditionFailed))
	}
	return aws.ToString(out.ETag), nil
}

// GetRecord reads a small record whole, with the ETag to hand to
// PutIfMatch; at most limit bytes, longer is an error.
func (s *Store) GetRecord(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: s.key(key)})
	if err != nil {
		return nil, "", fmt.Errorf("s3store: read %s: %w", key, classify(err, nil))
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("s3store: read %s: %w", key, err)
	}
	if int64(len(body)) > limit {
		return nil, "", fmt.Errorf("s3store: read %s: record longer than %d bytes", key, limit)
	}
	return body, aws.ToString(out.ETag), nil
}

// escapeKey escapes each segment of a key for x-amz-copy-source, keeping
// the slashes.
func escapeKey(k string) string {
	var b bytes.Buffer
	start := 0
	for i := 0; i <= len(k); i++ {
		if i == len(k) || k[i] == '/' {
			b.WriteString(url.PathEscape(k[start:i]))
			if i < len(k) {
				b.WriteByte('/')
			}
			start = i + 1
		}
	}
	return b.String()
}
