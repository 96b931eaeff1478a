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

// PresignPut returns a SigV4 pre-signed PUT for key, and the headers a
// client must send with it (and nothing else). The length, the sha256
// (as x-amz-checksum-sha256, which the server checks against the body)
// and If-None-Match: * are signed in, so the server refuses other bytes,
// another length, and a second PUT to a key that already exists.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, sha256hex string, expiry time.Duration) (string, map[string]string, error) {
	sum, err := hex.DecodeString(sha256hex)
	if err != nil || len(sum) != 32 {
		return "", nil, fmt.Errorf("s3store: presign put %s: sha256 %q is not 64 hex digits", key, sha256hex)
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
