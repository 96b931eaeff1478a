package s3store

//lint:file-ignore SA1019 feature/s3/manager is the transfer library this service is specified to use; its deprecation is handled by keeping it behind the downloader interface below.

import (
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// downloader is what Get needs of a transfer library. feature/s3/manager
// is deprecated upstream in favour of feature/s3/transfermanager; it is
// kept behind this interface so that the swap is local to this file.
type downloader interface {
	download(ctx context.Context, w io.WriterAt, bucket, key string) (int64, error)
}

type managerDownloader struct{ d *manager.Downloader }

func newManagerDownloader(c *s3.Client) managerDownloader {
	return managerDownloader{d: manager.NewDownloader(c)}
}

func (m managerDownloader) download(ctx context.Context, w io.WriterAt, bucket, key string) (int64, error) {
	return m.d.Download(ctx, w, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
}
