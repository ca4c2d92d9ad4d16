package s3

import (
	"errors"
	"fmt"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/tuist/fabrik-node/tier"
)

// ErrTimeout is returned (wrapped) when S3 made no progress for the tier's
// timeout: a hung server must become an error the router can count, never a
// build that waits forever.
var ErrTimeout = errors.New("s3 made no progress within the timeout")

// classify maps SDK errors onto the tier contract: a missing object is a
// miss, a rejected checksum is invalid input; anything else stays a failure.
func classify(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%w: %v", tier.ErrNotFound, err)
		case "NoSuchBucket":
			// A missing bucket is a configuration error to surface, not a miss.
			return err
		case "BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch", "IncompleteBody":
			return fmt.Errorf("%w: %v", tier.ErrInvalid, err)
		}
	}
	// HeadObject answers a miss with a bare 404 and no error code.
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() == 404 {
		return fmt.Errorf("%w: %v", tier.ErrNotFound, err)
	}
	return err
}

func isNotFound(err error) bool { return errors.Is(classify(err), tier.ErrNotFound) }
