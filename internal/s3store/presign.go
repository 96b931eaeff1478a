package s3store

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// maxExpiry is the longest a SigV4 pre-signed URL can be valid.
const maxExpiry = 7 * 24 * time.Hour

// PresignPut returns a SigV4 pre-signed PUT for key, and the headers a
// client must send with it (and nothing else). The length, the sha256
// (as x-amz-checksum-sha256, which the server checks against the body)
// and If-None-Match: * are signed in, so the server refuses other bytes,
// another length, and a second PUT to a key that already exists.
// Content-Length is among the headers; clients that take the length from
// the body (net/http, urllib) send the right one by themselves.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, sha256hex string, expiry time.Duration) (string, map[string]string, error) {
	sum, err := hex.DecodeString(sha256hex)
	if err != nil || len(sum) != 32 {
		return "", nil, fmt.Errorf("s3store: presign put %s: sha256 %q is not 64 hex digits", key, sha256hex)
	}
	if expiry <= 0 || expiry > maxExpiry {
		return "", nil, fmt.Errorf("s3store: presign put %s: expiry %v not in (0, %v]", key, expiry, maxExpiry)
	}
	if size < 0 {
		return "", nil, fmt.Errorf("s3store: presign put %s: negative size %d", key, size)
	}
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket:         aws.String(s.bucket),
		Key:            s.key(key),
		ContentLength:  aws.Int64(size),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
		IfNoneMatch:    aws.String("*"),
	}, s3.WithPresignExpires(expiry))
	if err != nil {
		return "", nil, fmt.Errorf("s3store: presign put %s: %w", key, err)
	}
	return req.URL, clientHeaders(req.SignedHeader), nil
}

// PresignGet returns a SigV4 pre-signed GET for key, valid for expiry.
func (s *Store) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if expiry <= 0 || expiry > maxExpiry {
		return "", fmt.Errorf("s3store: presign get %s: expiry %v not in (0, %v]", key, expiry, maxExpiry)
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    s.key(key),
	}, s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("s3store: presign get %s: %w", key, err)
	}
	return req.URL, nil
}

// clientHeaders is what the client must send: the signed headers except
// Host, which every HTTP client derives from the URL.
func clientHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if strings.EqualFold(k, "Host") || len(v) == 0 {
			continue
		}
		out[http.CanonicalHeaderKey(k)] = strings.Join(v, ",")
	}
	return out
}
