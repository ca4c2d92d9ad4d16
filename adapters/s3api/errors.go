package s3api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"

	"github.com/tuist/fabrik-node/adapters"
)

// apiError is one S3 error: the code SDKs switch on, and the status S3
// answers it with (SDKs retry 5xx and SlowDown, and give up on 4xx).
type apiError struct {
	Code    string
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// with returns a copy of e with a more specific message.
func (e *apiError) with(format string, args ...any) *apiError {
	c := *e
	c.Message = fmt.Sprintf(format, args...)
	return &c
}

// The codes this API answers, with S3's statuses.
var (
	errAccessDenied          = &apiError{"AccessDenied", http.StatusForbidden, "Access Denied"}
	errInvalidAccessKeyID    = &apiError{"InvalidAccessKeyId", http.StatusForbidden, "The AWS access key ID you provided does not exist in our records."}
	errSignatureDoesNotMatch = &apiError{"SignatureDoesNotMatch", http.StatusForbidden, "The request signature we calculated does not match the signature you provided."}
	errRequestTimeTooSkewed  = &apiError{"RequestTimeTooSkewed", http.StatusForbidden, "The difference between the request time and the server's time is too large."}
	errExpiredPresign        = &apiError{"AccessDenied", http.StatusForbidden, "Request has expired"}
	errAuthHeaderMalformed   = &apiError{"AuthorizationHeaderMalformed", http.StatusBadRequest, "The authorization header is malformed."}
	errAuthQueryMalformed    = &apiError{"AuthorizationQueryParametersError", http.StatusBadRequest, "The presigned URL's authorization parameters are malformed."}
	errMissingContentSHA256  = &apiError{"InvalidRequest", http.StatusBadRequest, "Missing required header for this request: x-amz-content-sha256"}
	errBadDigest             = &apiError{"BadDigest", http.StatusBadRequest, "The Content-MD5 or checksum you specified did not match what we received."}
	errInvalidDigest         = &apiError{"InvalidDigest", http.StatusBadRequest, "The Content-MD5 or checksum you specified is not valid."}
	errContentSHA256Mismatch = &apiError{"XAmzContentSHA256Mismatch", http.StatusBadRequest, "The provided 'x-amz-content-sha256' header does not match what was computed."}
	errIncompleteBody        = &apiError{"IncompleteBody", http.StatusBadRequest, "You did not provide the number of bytes specified by the Content-Length HTTP header."}
	errEntityTooLarge        = &apiError{"EntityTooLarge", http.StatusBadRequest, "Your proposed upload exceeds the maximum allowed object size."}
	errInvalidArgument       = &apiError{"InvalidArgument", http.StatusBadRequest, "Invalid argument."}
	errInvalidRequest        = &apiError{"InvalidRequest", http.StatusBadRequest, "Invalid request."}
	errInvalidBucketName     = &apiError{"InvalidBucketName", http.StatusBadRequest, "The specified bucket is not valid."}
	errMalformedXML          = &apiError{"MalformedXML", http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema."}
	errInvalidPart           = &apiError{"InvalidPart", http.StatusBadRequest, "One or more of the specified parts could not be found or did not match its entity tag."}
	errInvalidPartOrder      = &apiError{"InvalidPartOrder", http.StatusBadRequest, "The list of parts was not in ascending order."}
	errNoSuchKey             = &apiError{"NoSuchKey", http.StatusNotFound, "The specified key does not exist."}
	errNoSuchBucket          = &apiError{"NoSuchBucket", http.StatusNotFound, "The specified bucket does not exist."}
	errNoSuchUpload          = &apiError{"NoSuchUpload", http.StatusNotFound, "The specified multipart upload does not exist."}
	errInvalidRange          = &apiError{"InvalidRange", http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable."}
	errPreconditionFailed    = &apiError{"PreconditionFailed", http.StatusPreconditionFailed, "At least one of the preconditions you specified did not hold."}
	errNotImplemented        = &apiError{"NotImplemented", http.StatusNotImplemented, "A header or query you provided implies functionality that is not implemented."}
	errBucketNotEmpty        = &apiError{"BucketNotEmpty", http.StatusConflict, "The bucket you tried to delete is not empty."}
	errStorageFull           = &apiError{"StorageFull", http.StatusInsufficientStorage, "The cache is full."}
	errServiceUnavailable    = &apiError{"ServiceUnavailable", http.StatusServiceUnavailable, "The cache cannot store objects right now; retry."}
	errInternal              = &apiError{"InternalError", http.StatusInternalServerError, "We encountered an internal error. Please try again."}
)

// writeAnswers is the S3 reading of each upload outcome of the shared write
// path. A full cache is 507 (as MinIO answers a full drive): not a 4xx,
// which would read as the client's fault, and not 503, which SDKs retry
// at once.
var writeAnswers = adapters.StatusTable{
	adapters.Stored:      {Status: http.StatusOK},
	adapters.TooLarge:    {Status: errEntityTooLarge.Status, Message: errEntityTooLarge.Code},
	adapters.Full:        {Status: errStorageFull.Status, Message: errStorageFull.Code},
	adapters.Truncated:   {Status: errIncompleteBody.Status, Message: errIncompleteBody.Code},
	adapters.Invalid:     {Status: errInvalidRequest.Status, Message: errInvalidRequest.Code},
	adapters.Unavailable: {Status: errServiceUnavailable.Status, Message: errServiceUnavailable.Code},
	adapters.Internal:    {Status: errInternal.Status, Message: errInternal.Code},
}

// outcomeErrors gives each refused outcome its S3 error (the table above
// holds its status).
var outcomeErrors = map[adapters.Outcome]*apiError{
	adapters.TooLarge:    errEntityTooLarge,
	adapters.Full:        errStorageFull,
	adapters.Truncated:   errIncompleteBody,
	adapters.Invalid:     errInvalidRequest,
	adapters.Unavailable: errServiceUnavailable,
	adapters.Internal:    errInternal,
}

// errorFor turns a refused upload into its S3 error. A content mismatch
// against a signed payload hash is S3's XAmzContentSHA256Mismatch.
func errorFor(res adapters.Result, payloadHashed bool) *apiError {
	e := outcomeErrors[res.Outcome]
	if e == nil {
		e = errInternal
	}
	if res.Outcome == adapters.Invalid && payloadHashed {
		e = errContentSHA256Mismatch
	}
	ans := writeAnswers.For(res)
	if res.Outcome != adapters.Internal && res.Outcome != adapters.Unavailable && res.Err != nil {
		e = e.with("%s: %s", e.Message, res.Err)
	}
	c := *e
	c.Status = ans.Status
	return &c
}

type errorBody struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

// writeError answers e as S3 does: XML, except to HEAD (no body).
func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	id := requestID()
	w.Header().Set("x-amz-request-id", id)
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	writeXML(w, e.Status, errorBody{Code: e.Code, Message: e.Message, Resource: r.URL.Path, RequestID: id})
}

// writeXML writes v as an S3 XML document.
func writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, "cannot encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
