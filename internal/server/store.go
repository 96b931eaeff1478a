package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/functions"
	"github.com/udfhost/udfhost/internal/s3store"
	"github.com/udfhost/udfhost/sandbox"
)

// storeSpec is where artifacts and functions live, parsed from Config:
// nil for the data directory (one host), else one bucket and prefix that
// every host configured with it shares.
type storeSpec struct {
	bucket, prefix string
	endpoint       string
	region         string
	pathStyle      bool
}

// String is the store's URL as messages name it.
func (sp *storeSpec) String() string {
	if sp == nil {
		return "local"
	}
	if sp.prefix == "" {
		return "s3://" + sp.bucket + "/"
	}
	return "s3://" + sp.bucket + "/" + sp.prefix + "/"
}

// bucketName is S3's bucket naming rule (3-63 characters: lowercase
// letters, digits, '.', '-', starting and ending with a letter or digit).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// prefixSegment is one segment of a key prefix: no empty, "." or ".."
// segments, nothing a URL or a shell would need escaping for.
var prefixSegment = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

// regionName is an AWS-style region name (us-east-1, eu-central-2).
var regionName = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// parseStore checks the store settings of c, before anything is created:
// a mistyped flag is refused with one line naming it.
func parseStore(c Config) (*storeSpec, error) {
	if c.Store == "" || c.Store == "local" {
		for flag, set := range map[string]bool{"--s3-endpoint": c.S3Endpoint != "", "--s3-region": c.S3Region != "", "--s3-path-style": c.S3PathStyle} {
			if set {
				return nil, fmt.Errorf("%s needs --store s3://BUCKET[/PREFIX]: the local store has no S3 settings", flag)
			}
		}
		return nil, nil
	}
	rest, ok := strings.CutPrefix(c.Store, "s3://")
	if !ok {
		return nil, fmt.Errorf("--store %q: want s3://BUCKET[/PREFIX], or local (the data directory)", c.Store)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if !bucketName.MatchString(bucket) || strings.Contains(bucket, "..") {
		return nil, fmt.Errorf("--store %q: bucket %q is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')", c.Store, bucket)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if !prefixSegment.MatchString(seg) {
				return nil, fmt.Errorf("--store %q: prefix segment %q: want letters, digits, '.', '_', '-' (no empty, . or .. segments)", c.Store, seg)
			}
		}
	}
	sp := &storeSpec{bucket: bucket, prefix: prefix, region: c.S3Region, pathStyle: c.S3PathStyle}
	if c.S3Endpoint != "" {
		u, err := url.Parse(c.S3Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("--s3-endpoint %q: want http(s)://HOST[:PORT] (the S3 server's base URL)", c.S3Endpoint)
		}
		sp.endpoint = c.S3Endpoint
	}
	if c.S3Region != "" && !regionName.MatchString(c.S3Region) {
		return nil, fmt.Errorf("--s3-region %q: want a region name such as us-east-1", c.S3Region)
	}
	return sp, nil
}

// openBucket builds the S3 client of sp; credentials come from the
// standard AWS chain (environment variables, shared config files), never
// from flags. It does not contact the server.
func openBucket(ctx context.Context, sp *storeSpec) (*s3store.Store, error) {
	b, err := s3store.New(ctx, s3store.Options{
		Bucket: sp.bucket, Prefix: sp.prefix, Endpoint: sp.endpoint, Region: sp.region, PathStyle: sp.pathStyle,
	})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", sp, err)
	}
	return b, nil
}

// s3Uploads answers the pre-signed URL endpoint of a host on a bucket:
// its upload URLs point at the S3 store, so nothing is uploaded here.
func s3Uploads(sp *storeSpec) http.Handler {
	msg := "uploads go to the S3 store " + sp.String() + ": PUT to the URL CreateUploadURL returns\n"
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, msg)
	})
}

// openShared opens the bucket of s.spec: the artifact store and the
// function registry on it, each loading what every host wrote (a host
// that restarts rebuilds everything from the bucket). The compiled
// modules and the downloaded bytes are cached under cacheDir, this
// host's own.
func (s *Server) openShared(ctx context.Context, cacheDir string, maxSize int64, wasmInterrupt bool) error {
	b, err := openBucket(ctx, s.spec)
	if err != nil {
		return err
	}
	store, err := artifacts.NewBucket(ctx, artifacts.BucketConfig{
		Bucket: b,
		HostID: s.hostID,
		// What the store records for a call names the caller's network.
		Audit:    callerAudit{s.audit},
		MaxSize:  maxSize,
		CacheDir: cacheDir,
		// Compile as the default pool's workers will (see the local store).
		Runtime:    sandbox.RuntimeConfig(wasmInterrupt),
		Precompile: s.precompile(wasmInterrupt),
	})
	if err != nil {
		return err
	}
	s.store = store
	if s.fns, err = functions.OpenBucketRegistry(ctx, b); err != nil {
		return err
	}
	return nil
}
