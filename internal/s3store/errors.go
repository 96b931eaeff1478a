package s3store

import (
	"errors"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

var (
	// ErrNotFound is an absent object.
	ErrNotFound = errors.New("s3store: object not found")
	// ErrExists is a create-only write (If-None-Match: *) that found the
	// key taken: another writer got there first.
	ErrExists = errors.New("s3store: object already exists")
	// ErrPreconditionFailed is an If-Match write whose ETag no longer
	// matches: another writer changed the object since it was read.
	ErrPreconditionFailed = errors.New("s3store: precondition failed")
)

// classify maps the server's answer onto the sentinels; cond says which
// one a 412 means for this call (ErrExists for If-None-Match, otherwise
// ErrPreconditionFailed). Other errors come back unchanged.
func classify(err error, cond error) error {
	if err == nil {
		return nil
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return errors.Join(ErrNotFound, err)
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			return errors.Join(ErrNotFound, err)
		case http.StatusPreconditionFailed:
			if cond != nil {
				return errors.Join(cond, err)
			}
		case http.StatusConflict:
			// S3 answers 409 ConditionalRequestConflict when two
			// conditional writes to one key race.
			if cond != nil {
				return errors.Join(cond, err)
			}
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed" && cond != nil {
		return errors.Join(cond, err)
	}
	return err
}
