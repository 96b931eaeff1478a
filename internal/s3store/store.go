package s3store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Options says which bucket and prefix a Store works in and how to reach
// the S3 server.
type Options struct {
	Bucket string
	// Prefix is prepended to every key ("a/b" and "a/b/" both give
	// "a/b/KEY"); empty means the bucket's root.
	Prefix string
	// Endpoint is the S3 server's base URL; empty means AWS's own.
	Endpoint string
	Region   string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET rather than
	// BUCKET.ENDPOINT, which S3-compatible servers usually need.
	PathStyle bool
	// Credentials signs requests and URLs; nil means the standard AWS
	// chain (environment variables, shared config files).
	Credentials aws.CredentialsProvider
}

// Store is one bucket and prefix. It is safe for concurrent use.
type Store struct {
	client  *s3.Client
	presign *s3.PresignClient
	dl      downloader
	bucket  string
	prefix  string
}

// New builds a Store from opts. It does not contact the server.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3store: no bucket")
	}
	loads := []func(*config.LoadOptions) error{
		// The SDK's default request checksums (CRC32 on every PUT) would
		// be signed into pre-signed URLs as a header no plain client
		// sends; only the sha256 the host asks for is wanted.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if opts.Region != "" {
		loads = append(loads, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		loads = append(loads, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("s3store: load AWS config: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
	})
	prefix := strings.Trim(opts.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Store{
		client:  client,
		presign: s3.NewPresignClient(client),
		dl:      newManagerDownloader(client),
		bucket:  opts.Bucket,
		prefix:  prefix,
	}, nil
}

// String names the store for messages: s3://BUCKET/PREFIX/.
func (s *Store) String() string { return "s3://" + s.bucket + "/" + s.prefix }

func (s *Store) key(k string) *string { return aws.String(s.prefix + k) }
