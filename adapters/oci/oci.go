// Package oci serves the OCI distribution API v1.1 under /v2/: the registry
// BuildKit (docker buildx, buildctl) exports its build cache to and imports
// it from with --export-cache/--import-cache type=registry. Blobs are the
// content-addressed blobs every protocol shares (a layer and a Bazel CAS
// blob with the same SHA-256 are one file); each repository records which
// blobs were pushed or mounted to it, its manifests by digest and its tags,
// as keys in namespaces of its own, which flow to upstreams like every
// other key.
package oci

import (
	"net/http"
	"time"

	"github.com/tuist/fabrik-node/adapters"
)

// buildSystem labels OCI artifacts in stats and metrics.
const buildSystem = "buildkit"

// Options configure the adapter.
type Options struct {
	// HTTPOptions: MaxArtifactSize refuses larger blobs (and manifests)
	// with 413; Guard checks every request: pulls need read, pushes write,
	// deletes admin.
	adapters.HTTPOptions
	// MaxUploads bounds the upload sessions open at once (default 1024):
	// each holds a staging file open.
	MaxUploads int
	// UploadTimeout drops an upload session idle for this long (default
	// one hour) with its staging file.
	UploadTimeout time.Duration
}

// Adapter serves the distribution API over a Cache.
type Adapter struct {
	cache   adapters.Cache
	opts    Options
	uploads *sessions
	// Handlers behind the guard, one per access level.
	read, write, admin http.Handler
}

// New returns an OCI adapter.
func New(cache adapters.Cache, opts Options) *Adapter {
	opts.HTTPOptions = opts.HTTPOptions.WithDefaults()
	if opts.MaxUploads <= 0 {
		opts.MaxUploads = 1024
	}
	if opts.UploadTimeout <= 0 {
		opts.UploadTimeout = time.Hour
	}
	a := &Adapter{cache: cache, opts: opts, uploads: newSessions(opts.MaxUploads, opts.UploadTimeout)}
	serve := http.HandlerFunc(a.serve)
	a.read = opts.Guard.Wrap(adapters.Read, serve)
	a.write = opts.Guard.Wrap(adapters.Write, serve)
	a.admin = opts.Guard.Wrap(adapters.Admin, serve)
	return a
}

// Routes mounts the adapter under /v2/.
func (a *Adapter) Routes(mux *http.ServeMux) {
	mux.Handle("/v2/", http.HandlerFunc(a.guarded))
}

// Close drops every open upload session and its staging file.
func (a *Adapter) Close() { a.uploads.closeAll() }

// guarded sends the request through the guard for what it wants to do:
// GET and HEAD pull (read), DELETE needs admin (a plain write token must not
// erase a shared cache), everything else pushes (write).
func (a *Adapter) guarded(w http.ResponseWriter, r *http.Request) {
	// On every answer, refusals included: Docker recognises a registry by
	// this header on its first (often 401) response.
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if parseRoute(r.URL.Path).ep == epUpload {
			// An upload's status belongs to its pusher.
			a.write.ServeHTTP(w, r)
			return
		}
		a.read.ServeHTTP(w, r)
	case http.MethodDelete:
		if parseRoute(r.URL.Path).ep == epUpload {
			// Cancelling one's own upload is part of pushing.
			a.write.ServeHTTP(w, r)
			return
		}
		a.admin.ServeHTTP(w, r)
	default:
		a.write.ServeHTTP(w, r)
	}
}

func (a *Adapter) serve(w http.ResponseWriter, r *http.Request) {
	rt := parseRoute(r.URL.Path)
	if rt.ep == epBase {
		a.base(w, r)
		return
	}
	if rt.ep == epNone {
		writeError(w, r, http.StatusNotFound, codeNameUnknown, "no such endpoint: "+r.URL.Path)
		return
	}
	if !validName(rt.name) {
		writeError(w, r, http.StatusBadRequest, codeNameInvalid, "invalid repository name "+quote(rt.name))
		return
	}
	m := r.Method
	switch rt.ep {
	case epBlob:
		switch m {
		case http.MethodGet, http.MethodHead:
			a.getBlob(w, r, rt)
			return
		case http.MethodDelete:
			a.deleteBlob(w, r, rt)
			return
		}
	case epUploads:
		if m == http.MethodPost {
			a.startUpload(w, r, rt)
			return
		}
	case epUpload:
		switch m {
		case http.MethodPatch:
			a.patchUpload(w, r, rt)
			return
		case http.MethodPut:
			a.finishUpload(w, r, rt)
			return
		case http.MethodGet, http.MethodHead:
			a.uploadStatus(w, r, rt)
			return
		case http.MethodDelete:
			a.cancelUpload(w, r, rt)
			return
		}
	case epManifest:
		switch m {
		case http.MethodGet, http.MethodHead:
			a.getManifest(w, r, rt)
			return
		case http.MethodPut:
			a.putManifest(w, r, rt)
			return
		case http.MethodDelete:
			a.deleteManifest(w, r, rt)
			return
		}
	case epTags:
		if m == http.MethodGet || m == http.MethodHead {
			a.listTags(w, r, rt)
			return
		}
	case epReferrers:
		if m == http.MethodGet || m == http.MethodHead {
			a.referrers(w, r, rt)
			return
		}
	}
	w.Header().Set("Allow", allowed(rt.ep))
	writeError(w, r, http.StatusMethodNotAllowed, codeUnsupported, m+" is not supported on "+r.URL.Path)
}

func allowed(ep endpoint) string {
	switch ep {
	case epBlob:
		return "GET, HEAD, DELETE"
	case epUploads:
		return "POST"
	case epUpload:
		return "GET, HEAD, PATCH, PUT, DELETE"
	case epManifest:
		return "GET, HEAD, PUT, DELETE"
	}
	return "GET, HEAD"
}

// base answers GET /v2/: the API is there (and, behind the guard, the
// client's credentials are good).
func (a *Adapter) base(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, r, http.StatusMethodNotAllowed, codeUnsupported, r.Method+" is not supported on /v2/")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
}

func quote(s string) string {
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return `"` + s + `"`
}

func (a *Adapter) observe(op string, start time.Time) {
	a.opts.Metrics.ObserveRequest(buildSystem, op, start)
}

func (a *Adapter) count(hit bool) {
	if hit {
		a.opts.Metrics.Hit(buildSystem)
	} else {
		a.opts.Metrics.Miss(buildSystem)
	}
}
