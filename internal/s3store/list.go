package s3store

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Object is one entry of a listing: its key (without the store's prefix)
// and ETag (quotes included). Hosts compare ETags between listings to
// find what another host changed.
type Object struct {
	Key  string
	ETag string
	Size int64
}

// List returns every object whose key starts with prefix, in key order,
// following continuation tokens.
func (s *Store) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: s.key(prefix)}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3store: list %s: %w", prefix, classify(err, nil))
		}
		for _, o := range page.Contents {
			k, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if !ok {
				continue
			}
			out = append(out, Object{Key: k, ETag: aws.ToString(o.ETag), Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

// DeleteIfMatch removes key only if its ETag is still etag:
// ErrPreconditionFailed if another writer changed it since it was read.
// S3 checks If-Match on DeleteObject; versitygw v1.8.0 may not, so the
// ETag is also compared by a Head first (the same window as Copy's).
func (s *Store) DeleteIfMatch(ctx context.Context, key, etag string) error {
	_, cur, err := s.Head(ctx, key)
	if err != nil {
		return fmt.Errorf("s3store: delete %s: %w", key, err)
	}
	if cur != etag {
		return fmt.Errorf("s3store: delete %s: %w (ETag %s, not %s)", key, ErrPreconditionFailed, cur, etag)
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: s.key(key), IfMatch: aws.String(etag)})
	if err != nil {
		return fmt.Errorf("s3store: delete %s: %w", key, classify(err, ErrPreconditionFailed))
	}
	return nil
}
