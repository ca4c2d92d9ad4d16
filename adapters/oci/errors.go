package oci

import (
	"encoding/json"
	"net/http"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/auth"
)

// Error codes of the distribution spec, plus UNAVAILABLE and UNKNOWN, which
// Docker's registry uses for a server that cannot answer.
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeDenied              = "DENIED"
	codeUnsupported         = "UNSUPPORTED"
	codeTooManyRequests     = "TOOMANYREQUESTS"
	codeUnavailable         = "UNAVAILABLE"
	codeUnknown             = "UNKNOWN"
)

type specError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type errorBody struct {
	Errors []specError `json:"errors"`
}

// writeError answers with the spec's error body. HEAD answers carry no
// body: the status and the headers are all a client sees.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("Docker-Content-Digest")
	w.WriteHeader(status)
	if r != nil && r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(errorBody{Errors: []specError{{Code: code, Message: msg}}})
}

// WriteAuthError answers a refused request (401 or 403) the way registry
// clients expect: the spec's JSON error, and on 401 a Basic challenge only.
// containerd, Docker, crane, oras and skopeo answer a Basic challenge with
// the credentials they were given (the token as the password); offered a
// Bearer challenge they would instead look for a token service at its realm,
// which a node does not run. A token sent as Bearer is accepted all the same.
func WriteAuthError(w http.ResponseWriter, status int, msg string) {
	code := codeDenied
	if status == http.StatusUnauthorized {
		code = codeUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="`+auth.Realm+`"`)
	} else {
		w.Header().Del("WWW-Authenticate")
	}
	writeError(w, nil, status, code, msg)
}

// blobAnswers maps the shared write path's outcomes for a blob upload. A
// digest that does not match the bytes is DIGEST_INVALID (nothing stored).
var blobAnswers = adapters.StatusTable{
	adapters.Stored:      {Status: http.StatusCreated},
	adapters.TooLarge:    {Status: http.StatusRequestEntityTooLarge, Message: "blob too large"},
	adapters.Full:        {Status: http.StatusInsufficientStorage, Message: "cache is full"},
	adapters.Truncated:   {Status: http.StatusBadRequest, Message: "blob upload incomplete"},
	adapters.Invalid:     {Status: http.StatusBadRequest, Message: "digest does not match the content"},
	adapters.Unavailable: {Status: http.StatusServiceUnavailable, Message: "the cache cannot store blobs right now"},
	adapters.Internal:    {Status: http.StatusInternalServerError, Message: "cannot store blob"},
}

// manifestAnswers maps outcomes for a manifest push.
var manifestAnswers = adapters.StatusTable{
	adapters.Stored:      {Status: http.StatusCreated},
	adapters.TooLarge:    {Status: http.StatusRequestEntityTooLarge, Message: "manifest too large"},
	adapters.Full:        {Status: http.StatusInsufficientStorage, Message: "cache is full"},
	adapters.Truncated:   {Status: http.StatusBadRequest, Message: "manifest upload incomplete"},
	adapters.Invalid:     {Status: http.StatusBadRequest, Message: "manifest does not match its digest"},
	adapters.Unavailable: {Status: http.StatusServiceUnavailable, Message: "the cache cannot store manifests right now"},
	adapters.Internal:    {Status: http.StatusInternalServerError, Message: "cannot store manifest"},
}

// outcomeCode is the spec error code of a refused upload.
func outcomeCode(o adapters.Outcome, invalid string) string {
	switch o {
	case adapters.TooLarge:
		return codeSizeInvalid
	case adapters.Full:
		return codeDenied
	case adapters.Truncated:
		return codeBlobUploadInvalid
	case adapters.Invalid:
		return invalid
	case adapters.Unavailable:
		return codeUnavailable
	}
	return codeUnknown
}
