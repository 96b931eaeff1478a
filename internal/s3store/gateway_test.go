package s3store

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/udfhost/udfhost/internal/s3store/s3test"
)

const testBucket = s3test.Bucket

// gateway is a versitygw serving a posix directory on a free local port,
// and a Store on it.
type gateway struct {
	endpoint string
	store    *Store
	gw       *s3test.Gateway
}

// startGateway starts versitygw (s3test.Start) and opens a Store on it
// under prefix.
func startGateway(t *testing.T, prefix string) *gateway {
	t.Helper()
	gw := s3test.Start(t)
	store, err := New(context.Background(), Options{
		Bucket:      testBucket,
		Prefix:      prefix,
		Endpoint:    gw.Endpoint,
		Region:      s3test.Region,
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &gateway{endpoint: gw.Endpoint, store: store, gw: gw}
}
