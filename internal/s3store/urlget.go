package s3store

//lint:file-ignore SA1019 feature/s3/manager is the transfer library this service is specified to use; its deprecation is handled by keeping it behind the urlDownloader interface below.

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DownloadURL fetches the object a pre-signed GET URL names into w, and
// returns how many bytes it wrote. The URL is the only credential used:
// each ranged part is a plain HTTP GET of it, with the Range (and the
// If-Match of the first part's ETag) that the transfer library asks for,
// which S3 accepts unsigned. An object longer than limit bytes is refused
// with ErrTooLarge before more than limit bytes are written. The caller checks the bytes
// (digest) before using any.
func DownloadURL(ctx context.Context, rawURL string, w io.WriterAt, limit int64) (int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, fmt.Errorf("s3store: download: malformed URL")
	}
	name := strings.TrimPrefix(u.Path, "/") // for messages: never the query, which holds the signature
	n, err := newURLDownloader(rawURL).download(ctx, &limitWriterAt{w: w, limit: limit})
	if err != nil {
		return n, fmt.Errorf("s3store: download %s: %w", name, err)
	}
	return n, nil
}

// urlDownloader is what DownloadURL needs of a transfer library.
// feature/s3/manager is deprecated upstream in favour of
// feature/s3/transfermanager; it is kept behind this interface so that the
// swap is local to this file.
type urlDownloader interface {
	download(ctx context.Context, w io.WriterAt) (int64, error)
}

type managerURLDownloader struct{ d *manager.Downloader }

func newURLDownloader(rawURL string) urlDownloader {
	return managerURLDownloader{d: manager.NewDownloader(urlClient{url: rawURL, hc: http.DefaultClient})}
}

func (m managerURLDownloader) download(ctx context.Context, w io.WriterAt) (int64, error) {
	// Bucket and key are in the URL; the downloader only copies them
	// into each part's input, which urlClient ignores.
	return m.d.Download(ctx, w, &s3.GetObjectInput{Bucket: aws.String(""), Key: aws.String("")})
}

// urlClient is a manager.DownloadAPIClient whose GetObject is an HTTP GET
// of one pre-signed URL.
type urlClient struct {
	url string
	hc  *http.Client
}

func (c urlClient) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, errors.New("build request for the pre-signed URL")
	}
	if in.Range != nil {
		req.Header.Set("Range", *in.Range)
	}
	if in.IfMatch != nil {
		req.Header.Set("If-Match", *in.IfMatch)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, signature included
		}
		return nil, fmt.Errorf("GET: %w", err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	out := &s3.GetObjectOutput{Body: resp.Body, ETag: aws.String(resp.Header.Get("ETag"))}
	if resp.ContentLength >= 0 {
		out.ContentLength = aws.Int64(resp.ContentLength)
	}
	if cr := resp.Header.Get("Content-Range"); cr != "" {
		out.ContentRange = aws.String(cr)
	}
	return out, nil
}

// HTTPStatusError is a pre-signed request the server refused; it has the
// HTTPStatusCode method the transfer library looks for (a 416 ends a
// download of unknown length), and wraps ErrNotFound for a 404.
type HTTPStatusError struct {
	Status int
	Code   string // the S3 error code, e.g. "SignatureDoesNotMatch"
}

func (e *HTTPStatusError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("refused: %d %s (%s)", e.Status, http.StatusText(e.Status), e.Code)
	}
	return fmt.Sprintf("refused: %d %s", e.Status, http.StatusText(e.Status))
}

// HTTPStatusCode is the status the server answered.
func (e *HTTPStatusError) HTTPStatusCode() int { return e.Status }

func (e *HTTPStatusError) Unwrap() error {
	if e.Status == http.StatusNotFound {
		return ErrNotFound
	}
	return nil
}

func statusError(resp *http.Response) error {
	var body struct {
		Code string `xml:"Code"`
	}
	_ = xml.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&body)
	return &HTTPStatusError{Status: resp.StatusCode, Code: body.Code}
}

// ErrTooLarge is a download whose object is longer than the caller's
// limit: not the object the caller was told of.
var ErrTooLarge = errors.New("s3store: object larger than the limit")

// limitWriterAt refuses writes that reach past limit.
type limitWriterAt struct {
	w     io.WriterAt
	limit int64
}

func (l *limitWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > l.limit {
		return 0, fmt.Errorf("%w: object larger than %d bytes", ErrTooLarge, l.limit)
	}
	return l.w.WriteAt(p, off)
}
