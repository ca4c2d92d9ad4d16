// Package webdav serves the WebDAV subset that sccache's storage layer
// (OpenDAL's webdav service) and plain WebDAV clients such as rclone use,
// under /webdav/ on the shared HTTP listener:
// SCCACHE_WEBDAV_ENDPOINT=http://127.0.0.1:5071/webdav/.
//
// Methods: GET and HEAD (a file), PUT (a file, streamed through the shared
// write path), DELETE (a file, or a collection and everything in it), MKCOL
// (201, or 405 when something exists there), PROPFIND with Depth 0 or 1 (207
// multistatus with resourcetype, displayname, getcontentlength,
// getlastmodified and getetag), OPTIONS. OpenDAL writes a file by PROPFINDing
// each parent upward until one exists (404 = missing), MKCOLing the missing
// ones top-down, then PUTting; it reads with one GET (404 = miss).
//
// golang.org/x/net/webdav is not used: its PUT copies the body into a
// FileSystem file and answers every failure of that copy with 405, so it can
// neither refuse a declared length before reading nor map a full cache or a
// truncated body to their statuses, and its GET needs a seekable file where
// an upstream hit is a stream (see ARCHITECTURE.md).
package webdav

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// Namespace holds WebDAV files (key = path) and collections (key = path
// and "/", body = listing) in the key index; file bodies are CAS blobs.
const Namespace = "webdav"

// buildSystem labels WebDAV artifacts and requests in metrics and stats:
// sccache is the build tool that speaks it ("sccache" in [build_tools]).
const buildSystem = "sccache"

// Prefix is the URL path the adapter serves.
const Prefix = "/webdav/"

// allowed is the Allow header of a 405.
const allowed = "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, PROPFIND"

// Options configure an Adapter. Guard sees GET, HEAD and PROPFIND as
// reads, PUT, DELETE and MKCOL as writes; OpenDAL sends the token as the
// Basic password (SCCACHE_WEBDAV_PASSWORD) or as a Bearer token
// (SCCACHE_WEBDAV_TOKEN).
type Options = adapters.HTTPOptions

// Adapter serves WebDAV over an adapters.Cache.
type Adapter struct {
	cache adapters.Cache
	opts  Options
	log   *slog.Logger
	// locks serialise updates of one collection's listing.
	locks collectionLocks
	// started dates the root collection, which has no entry of its own
	// until something is written into it.
	started time.Time
}

// New returns an Adapter storing into cache.
func New(cache adapters.Cache, opts Options) *Adapter {
	opts = opts.WithDefaults()
	return &Adapter{cache: cache, opts: opts, log: opts.Logger.With("adapter", "webdav"), started: time.Now()}
}

// Routes registers /webdav and everything under /webdav/ on mux, for every
// method: ServeMux patterns cannot name WebDAV's methods one by one in a
// way that answers 405 for the others.
func (a *Adapter) Routes(mux *http.ServeMux) {
	read := a.opts.Guard.Wrap(adapters.Read, http.HandlerFunc(a.serveRead))
	write := a.opts.Guard.Wrap(adapters.Write, http.HandlerFunc(a.serveWrite))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, "PROPFIND":
			read.ServeHTTP(w, r)
		case http.MethodPut, http.MethodDelete, "MKCOL":
			write.ServeHTTP(w, r)
		case http.MethodOptions:
			// Capability discovery; it reveals nothing, like CORS preflight.
			w.Header().Set("DAV", "1")
			w.Header().Set("Allow", allowed)
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("Allow", allowed)
			http.Error(w, r.Method+" is not supported", http.StatusMethodNotAllowed)
		}
	})
	mux.Handle(Prefix, h)
	mux.Handle("/webdav", h)
}

func (a *Adapter) serveRead(w http.ResponseWriter, r *http.Request) {
	p, slash, ok := a.path(w, r)
	if !ok {
		return
	}
	switch r.Method {
	case "PROPFIND":
		a.propfind(w, r, p, slash)
	default:
		a.get(w, r, p)
	}
}

func (a *Adapter) serveWrite(w http.ResponseWriter, r *http.Request) {
	p, slash, ok := a.path(w, r)
	if !ok {
		return
	}
	switch r.Method {
	case http.MethodPut:
		a.put(w, r, p, slash)
	case "MKCOL":
		a.mkcol(w, r, p)
	default:
		a.delete(w, r, p, slash)
	}
}

func (a *Adapter) path(w http.ResponseWriter, r *http.Request) (davPath, bool, bool) {
	p, slash, err := parsePath(r.URL.Path)
	if err != nil {
		http.Error(w, "malformed WebDAV path: "+err.Error(), http.StatusBadRequest)
		return "", false, false
	}
	return p, slash, true
}

func (a *Adapter) ref(key string) messages.Ref { return messages.Ref{Namespace: Namespace, Key: key} }

// resource is what a path names: a file or a collection, with its entry.
type resource struct {
	collection bool
	meta       messages.Meta
}

// lookup finds what p names. A path written with a trailing slash is
// looked up as a collection first. found is false when neither exists.
func (a *Adapter) lookup(ctx context.Context, p davPath, slash bool) (resource, bool) {
	if p.isRoot() {
		st, _ := a.cache.Stat(ctx, a.ref(p.collectionKey()))
		if st == nil || !st.Found {
			return resource{collection: true, meta: messages.Meta{CreatedAt: a.started}}, true
		}
		return resource{collection: true, meta: st.Meta}, true
	}
	order := []bool{false, true}
	if slash {
		order = []bool{true, false}
	}
	for _, collection := range order {
		key := p.fileKey()
		if collection {
			key = p.collectionKey()
		}
		if st, err := a.cache.Stat(ctx, a.ref(key)); err == nil && st.Found {
			return resource{collection: collection, meta: st.Meta}, true
		}
	}
	return resource{}, false
}

// setEntityHeaders sets the validators of a file's entry.
func setEntityHeaders(w http.ResponseWriter, m messages.Meta) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	h.Set("ETag", etag(m))
	h.Set("Last-Modified", lastModified(m).Format(http.TimeFormat))
}

func etag(m messages.Meta) string { return `"` + m.Hash + `"` }

// lastModified is when the entry was written; an entry served by an upstream
// may not say, and then it is "now" (clients only need a valid date).
func lastModified(m messages.Meta) time.Time {
	if m.CreatedAt.IsZero() {
		return time.Now().UTC()
	}
	return m.CreatedAt.UTC()
}

// get answers GET and HEAD on a file. A range request is answered with the
// whole body (200), which HTTP allows and OpenDAL accepts.
func (a *Adapter) get(w http.ResponseWriter, r *http.Request, p davPath) {
	defer a.opts.Metrics.ObserveRequest(buildSystem, "get", time.Now())
	if p.isRoot() {
		w.Header().Set("Allow", allowed)
		http.Error(w, "the root is a collection: use PROPFIND", http.StatusMethodNotAllowed)
		return
	}
	if r.Method == http.MethodHead {
		st, err := a.cache.Stat(r.Context(), a.ref(p.fileKey()))
		if err != nil || !st.Found {
			a.notFoundOrCollection(w, r, p)
			return
		}
		setEntityHeaders(w, st.Meta)
		return
	}
	res, err := a.cache.Get(r.Context(), a.ref(p.fileKey()))
	if err != nil || !res.Found {
		a.opts.Metrics.Miss(buildSystem)
		a.notFoundOrCollection(w, r, p)
		return
	}
	a.opts.Metrics.Hit(buildSystem)
	defer res.Body.Close()
	setEntityHeaders(w, res.Meta)
	n, err := adapters.SendBody(w, res.Body, res.Meta.Size)
	a.opts.Metrics.Downloaded(n)
	if err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn("webdav: response aborted", "path", string(p), "sent", n, "err", err)
	}
}

// notFoundOrCollection answers a read of a path that is not a file.
func (a *Adapter) notFoundOrCollection(w http.ResponseWriter, r *http.Request, p davPath) {
	if st, err := a.cache.Stat(r.Context(), a.ref(p.collectionKey())); err == nil && st.Found {
		w.Header().Set("Allow", allowed)
		http.Error(w, "a collection: use PROPFIND", http.StatusMethodNotAllowed)
		return
	}
	http.Error(w, "not found", http.StatusNotFound)
}
