package s3api

import (
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tenant"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/adapters"
)

// target is what a request addresses.
type target struct {
	bucket, key string
	// scope is the tenant namespace the request's token confines it to
	// ("s3" for single-tenant tokens): in-memory state (multipart uploads)
	// is matched on it, as the cache's keys are scoped by the same rule.
	scope string
}

// locate reads bucket and key from a path-style (/bucket/key) or
// virtual-host style (bucket.<domain>/key) request.
func (a *Adapter) locate(r *http.Request) target {
	path := strings.TrimPrefix(r.URL.Path, "/")
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if d := a.opts.VirtualHostDomain; d != "" {
		if b, ok := strings.CutSuffix(strings.ToLower(host), "."+strings.ToLower(d)); ok && b != "" {
			return target{bucket: b, key: path}
		}
	}
	bucket, key, _ := strings.Cut(path, "/")
	return target{bucket: bucket, key: key}
}

// Query parameters naming S3 features this API does not have; a request
// using one is refused rather than served as a plain read or write (a PUT
// ?acl must not overwrite the object with its XML body).
var unsupported = []string{"acl", "tagging", "torrent", "legal-hold", "retention", "attributes", "restore",
	"select", "versionId", "versioning", "policy", "cors", "lifecycle", "website", "replication",
	"encryption", "logging", "notification", "object-lock", "ownershipControls", "publicAccessBlock",
	"accelerate", "requestPayment", "analytics", "inventory", "metrics", "intelligent-tiering", "versions"}

func (a *Adapter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t := a.locate(r)
	op, access, h := a.route(r, t)
	defer a.opts.Metrics.ObserveRequest(BuildSystem, op, start)
	if h == nil {
		writeError(w, r, errNotImplemented.with("%s %s is not implemented", r.Method, op))
		return
	}
	if t.bucket != "" && !validBucket(t.bucket) {
		writeError(w, r, errInvalidBucketName.with("bucket name %q is not valid", t.bucket))
		return
	}
	if t.key != "" && !validKey(t.key) {
		writeError(w, r, errInvalidArgument.with("object key is empty, longer than 1024 bytes or holds a NUL"))
		return
	}
	q, aerr := a.authenticate(r, access)
	if aerr != nil {
		a.opts.Logger.Debug("s3: request refused", "method", r.Method, "path", r.URL.Path, "code", aerr.Code, "reason", aerr.Message)
		writeError(w, r, aerr)
		return
	}
	if q.ctx != nil {
		r = r.WithContext(q.ctx)
	}
	t.scope = tenant.Scope(r.Context(), messages.Ref{Namespace: "s3"}).Namespace
	w.Header().Set("x-amz-request-id", requestID())
	h(w, r, t, q)
}

type handler func(http.ResponseWriter, *http.Request, target, *request)

// route picks the operation. GET and HEAD read; everything else writes.
func (a *Adapter) route(r *http.Request, t target) (string, adapters.Access, handler) {
	query := r.URL.Query()
	has := func(k string) bool { _, ok := query[k]; return ok }
	for _, k := range unsupported {
		if has(k) {
			return k, adapters.Write, nil
		}
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	access := adapters.Write
	if read {
		access = adapters.Read
	}
	copySource := r.Header.Get("X-Amz-Copy-Source") != ""
	switch {
	case t.bucket == "":
		if r.Method == http.MethodGet {
			return "list_buckets", access, a.listBuckets
		}
	case t.key == "":
		switch r.Method {
		case http.MethodGet:
			switch {
			case has("location"):
				return "get_bucket_location", access, a.bucketLocation
			case has("uploads"):
				return "list_multipart_uploads", access, a.listUploads
			case query.Get("list-type") == "2":
				return "list_objects_v2", access, a.listObjectsV2
			}
			return "list_objects", access, a.listObjectsV1
		case http.MethodHead:
			return "head_bucket", access, a.headBucket
		case http.MethodPut:
			return "create_bucket", access, a.createBucket
		case http.MethodDelete:
			return "delete_bucket", access, a.deleteBucket
		case http.MethodPost:
			if has("delete") {
				return "delete_objects", access, a.deleteObjects
			}
		}
	default:
		switch r.Method {
		case http.MethodGet:
			if has("uploadId") {
				return "list_parts", access, a.listParts
			}
			return "get", access, a.getObject
		case http.MethodHead:
			return "head", access, a.headObject
		case http.MethodPut:
			if copySource {
				return "copy", access, nil
			}
			if has("uploadId") || has("partNumber") {
				return "upload_part", access, a.uploadPart
			}
			return "put", access, a.putObject
		case http.MethodDelete:
			if has("uploadId") {
				return "abort_multipart", access, a.abortUpload
			}
			return "delete", access, a.deleteObject
		case http.MethodPost:
			switch {
			case has("uploads"):
				return "create_multipart", access, a.createUpload
			case has("uploadId"):
				return "complete_multipart", access, a.completeUpload
			}
		}
	}
	return strings.ToLower(r.Method), access, nil
}

// validBucket accepts S3's bucket names, including the legacy ones
// (upper case, underscores) older clients still create.
func validBucket(b string) bool {
	if len(b) < 1 || len(b) > 255 || b[0] == '.' || b[0] == '-' {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validKey(k string) bool {
	return k != "" && len(k) <= 1024 && !strings.ContainsRune(k, 0)
}
