package s3api

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/tuist/fabrik-node/adapters"
)

// Payload hash values of x-amz-content-sha256 besides a hex SHA-256.
const (
	unsignedPayload        = "UNSIGNED-PAYLOAD"
	streamingSigned        = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingSignedTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsigned      = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	amzDateFormat          = "20060102T150405Z"
	sigV4Algorithm         = "AWS4-HMAC-SHA256"
	maxPresignExpiry       = 7 * 24 * time.Hour
)

// signer computes the signatures requests are checked against: the AWS
// SDK's own SigV4 implementation, so the canonical request is exactly what
// AWS's clients build, not a second reading of the spec.
var signer = v4.NewSigner()

// request is what authentication learnt about a request, for the handlers
// that read its body.
type request struct {
	// ctx, when set, is the request's context carrying the token's
	// principal (auth on), so the cache scopes every key to its tenant.
	ctx context.Context
	// payload is x-amz-content-sha256 ("" when absent or presigned).
	payload string
	// verified: the signature was checked against the key pair, so the
	// chunk signatures of an aws-chunked body are checked too.
	verified bool
	// For chunk signatures: the request's signature, time, and credentials.
	seed   []byte
	when   time.Time
	region string
	creds  aws.Credentials
}

// payloadHash is the hex SHA-256 the body must have, or "".
func (q *request) payloadHash() string {
	if len(q.payload) == 64 {
		return strings.ToLower(q.payload)
	}
	return ""
}

// streaming reports an aws-chunked body.
func (q *request) streaming() bool { return strings.HasPrefix(q.payload, "STREAMING-") }

// sigV4 is a parsed SigV4 authorization, from the header or the query.
type sigV4 struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
	when                             time.Time
	token                            string
	expires                          time.Duration // presigned only
	presigned                        bool
}

// authenticate checks the request's signature and, with auth on, the JWT
// it carries as its session token. Without a key pair any well-formed
// signature passes (a loopback laptop edge needs no keys); a malformed one
// never does.
func (a *Adapter) authenticate(r *http.Request, access adapters.Access) (*request, *apiError) {
	q := &request{payload: r.Header.Get("X-Amz-Content-Sha256")}
	if q.payload != "" && !validPayload(q.payload) {
		return nil, errInvalidArgument.with("x-amz-content-sha256 %q is not a SHA-256 or a known payload mode", q.payload)
	}
	if strings.HasPrefix(r.Header.Get("Authorization"), "AWS ") {
		// SigV2: accepted as well-formed without a key pair (old s3cmd
		// configurations), never verified.
		if a.opts.AccessKeyID != "" {
			return nil, errAccessDenied.with("signature version 2 is not supported: sign with SigV4")
		}
		r.Header.Del("Authorization")
	}
	sig, aerr := parseSigV4(r)
	if aerr != nil {
		return nil, aerr
	}
	token := r.Header.Get("X-Amz-Security-Token")
	if sig != nil && sig.token != "" {
		token = sig.token
	}
	if sig != nil && a.opts.AccessKeyID != "" {
		if aerr := a.verify(r, sig, q); aerr != nil {
			return nil, aerr
		}
	} else if sig == nil && a.opts.AccessKeyID != "" {
		return nil, errAccessDenied.with("anonymous requests are refused: sign them with the configured access key")
	}
	if a.opts.Authorize != nil {
		if token == "" {
			return nil, errAccessDenied.with("no token: send the fabrik JWT as the session token (AWS_SESSION_TOKEN)")
		}
		ctx, err := a.opts.Authorize(r.Context(), token, access)
		if err != nil {
			return nil, errAccessDenied.with("%v", err)
		}
		q.ctx = ctx
	}
	return q, nil
}

func validPayload(p string) bool {
	switch p {
	case unsignedPayload, streamingSigned, streamingSignedTrailer, streamingUnsigned:
		return true
	}
	if len(p) != 64 {
		return false
	}
	_, err := hex.DecodeString(p)
	return err == nil
}

// parseSigV4 reads the header or query authorization; nil for an anonymous
// request.
func parseSigV4(r *http.Request) (*sigV4, *apiError) {
	if h := r.Header.Get("Authorization"); h != "" {
		return parseHeaderAuth(r, h)
	}
	query := r.URL.Query()
	if query.Get("X-Amz-Algorithm") != "" || query.Get("X-Amz-Signature") != "" {
		return parseQueryAuth(query)
	}
	return nil, nil
}

func parseHeaderAuth(r *http.Request, h string) (*sigV4, *apiError) {
	rest, ok := strings.CutPrefix(h, sigV4Algorithm+" ")
	if !ok {
		return nil, errAuthHeaderMalformed.with("only %s signatures are supported", sigV4Algorithm)
	}
	s := &sigV4{token: r.Header.Get("X-Amz-Security-Token")}
	var cred, headers string
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			headers = v
		case "Signature":
			s.signature = v
		}
	}
	if err := s.setCredential(cred); err != nil {
		return nil, errAuthHeaderMalformed.with("%s", err.Message)
	}
	if headers == "" || !validSignature(s.signature) {
		return nil, errAuthHeaderMalformed.with("SignedHeaders or Signature missing or malformed")
	}
	s.signedHeaders = strings.Split(headers, ";")
	date := r.Header.Get("X-Amz-Date")
	var err error
	if date != "" {
		s.when, err = time.Parse(amzDateFormat, date)
	} else {
		s.when, err = http.ParseTime(r.Header.Get("Date"))
	}
	if err != nil {
		return nil, errAccessDenied.with("missing or malformed X-Amz-Date")
	}
	return s, nil
}

func parseQueryAuth(query url.Values) (*sigV4, *apiError) {
	if query.Get("X-Amz-Algorithm") != sigV4Algorithm {
		return nil, errAuthQueryMalformed.with("X-Amz-Algorithm must be %s", sigV4Algorithm)
	}
	s := &sigV4{presigned: true, signature: query.Get("X-Amz-Signature"), token: query.Get("X-Amz-Security-Token")}
	if err := s.setCredential(query.Get("X-Amz-Credential")); err != nil {
		return nil, errAuthQueryMalformed.with("%s", err.Message)
	}
	headers := query.Get("X-Amz-SignedHeaders")
	if headers == "" || !validSignature(s.signature) {
		return nil, errAuthQueryMalformed.with("X-Amz-SignedHeaders or X-Amz-Signature missing or malformed")
	}
	s.signedHeaders = strings.Split(headers, ";")
	var err error
	if s.when, err = time.Parse(amzDateFormat, query.Get("X-Amz-Date")); err != nil {
		return nil, errAuthQueryMalformed.with("X-Amz-Date %q is malformed", query.Get("X-Amz-Date"))
	}
	secs, err := strconv.Atoi(query.Get("X-Amz-Expires"))
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > maxPresignExpiry {
		return nil, errAuthQueryMalformed.with("X-Amz-Expires must be between 1 and 604800 seconds")
	}
	s.expires = time.Duration(secs) * time.Second
	return s, nil
}

// setCredential parses <key>/<yyyymmdd>/<region>/s3/aws4_request.
func (s *sigV4) setCredential(cred string) *apiError {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[0] == "" || len(parts[1]) != 8 || parts[2] == "" || parts[3] != "s3" || parts[4] != "aws4_request" {
		return errInvalidArgument.with("credential %q is not <access key>/<date>/<region>/s3/aws4_request", cred)
	}
	s.accessKey, s.date, s.region, s.service = parts[0], parts[1], parts[2], parts[3]
	return nil
}

func validSignature(sig string) bool {
	if len(sig) != 64 {
		return false
	}
	_, err := hex.DecodeString(sig)
	return err == nil
}

// verify recomputes the signature with the configured secret and compares.
func (a *Adapter) verify(r *http.Request, s *sigV4, q *request) *apiError {
	now := a.opts.Now()
	if s.presigned {
		if now.After(s.when.Add(s.expires)) {
			return errExpiredPresign
		}
		if s.when.Sub(now) > a.opts.MaxClockSkew {
			return errRequestTimeTooSkewed
		}
	} else if d := now.Sub(s.when); d > a.opts.MaxClockSkew || -d > a.opts.MaxClockSkew {
		return errRequestTimeTooSkewed
	}
	if s.date != s.when.UTC().Format("20060102") {
		return errSignatureDoesNotMatch.with("the credential's date does not match the request's")
	}
	if s.accessKey != a.opts.AccessKeyID {
		return errInvalidAccessKeyID
	}
	if !s.presigned && q.payload == "" {
		return errMissingContentSHA256
	}
	creds := aws.Credentials{AccessKeyID: a.opts.AccessKeyID, SecretAccessKey: a.opts.SecretAccessKey, SessionToken: s.token}
	expected, err := expectedSignature(r, s, creds, q.payload)
	if err != nil {
		return errInternal
	}
	if !hmac.Equal([]byte(expected), []byte(strings.ToLower(s.signature))) {
		return errSignatureDoesNotMatch
	}
	q.verified, q.when, q.region, q.creds = true, s.when, s.region, creds
	q.seed, _ = hex.DecodeString(strings.ToLower(s.signature))
	return nil
}

// expectedSignature rebuilds the request as the client signed it (its
// method, raw path, query and exactly the headers it listed) and has the
// SDK's signer sign it.
func expectedSignature(r *http.Request, s *sigV4, creds aws.Credentials, payload string) (string, error) {
	rawPath := r.RequestURI
	if i := strings.IndexByte(rawPath, '?'); i >= 0 {
		rawPath = rawPath[:i]
	}
	if rawPath == "" || rawPath[0] != '/' {
		rawPath = r.URL.EscapedPath()
	}
	query := r.URL.Query()
	query.Del("X-Amz-Signature")
	u := &url.URL{Scheme: "http", Host: r.Host, Opaque: "//" + r.Host + rawPath, RawQuery: query.Encode()}
	req := &http.Request{Method: r.Method, URL: u, Host: r.Host, Header: http.Header{}}
	tokenSigned := false
	for _, h := range s.signedHeaders {
		switch h {
		case "host":
		case "content-length":
			req.ContentLength = r.ContentLength
		case "x-amz-security-token":
			tokenSigned = true
		default:
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	opts := func(o *v4.SignerOptions) {
		o.DisableURIPathEscaping = true // S3 signs the path as sent
		o.DisableHeaderHoisting = true
		o.DisableSessionToken = !s.presigned && !tokenSigned
	}
	ctx := context.Background()
	if s.presigned {
		if payload == "" {
			payload = query.Get("X-Amz-Content-Sha256")
		}
		if payload == "" {
			payload = unsignedPayload
		}
		signed, _, err := signer.PresignHTTP(ctx, creds, req, payload, s.service, s.region, s.when, opts)
		if err != nil {
			return "", err
		}
		const field = "X-Amz-Signature="
		return signed[strings.LastIndex(signed, field)+len(field):], nil
	}
	if err := signer.SignHTTP(ctx, creds, req, payload, s.service, s.region, s.when, opts); err != nil {
		return "", err
	}
	auth := req.Header.Get("Authorization")
	const field = "Signature="
	return auth[strings.LastIndex(auth, field)+len(field):], nil
}
