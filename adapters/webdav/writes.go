package webdav

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// writeAnswers is the WebDAV answer to each upload outcome. OpenDAL takes
// 200, 201 and 204 as stored; it retries 5xx (Unavailable and Internal are
// worth a retry), and sccache carries on without the entry on anything else.
var writeAnswers = adapters.StatusTable{
	adapters.Stored:      {Status: http.StatusCreated},
	adapters.TooLarge:    {Status: http.StatusRequestEntityTooLarge, Message: "not stored"},
	adapters.Full:        {Status: http.StatusInsufficientStorage, Message: "cache is full"},
	adapters.Truncated:   {Status: http.StatusBadRequest, Message: "not stored"},
	adapters.Invalid:     {Status: http.StatusBadRequest, Message: "not stored"},
	adapters.Unavailable: {Status: http.StatusServiceUnavailable, Message: "the cache cannot store artifacts right now"},
	adapters.Internal:    {Status: http.StatusInternalServerError, Message: "cannot store artifact"},
}

// put stores a file, then lists it in its collection (and any missing
// ancestor in theirs). A listing that cannot be updated is logged: the file
// is stored and readable either way.
func (a *Adapter) put(w http.ResponseWriter, r *http.Request, p davPath, slash bool) {
	defer a.opts.Metrics.ObserveRequest(buildSystem, "put", time.Now())
	if p.isRoot() || slash {
		w.Header().Set("Allow", allowed)
		http.Error(w, "cannot PUT a collection", http.StatusMethodNotAllowed)
		return
	}
	res := adapters.Store(r.Context(), a.cache, a.ref(p.fileKey()), messages.Meta{BuildSystem: buildSystem}, adapters.Upload{
		Body: r.Body, Length: r.ContentLength, Max: a.opts.MaxArtifactSize,
	})
	a.opts.Metrics.Uploaded(res.Size)
	if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
		a.log.Error("webdav: store failed", "path", string(p), "outcome", res.Outcome, "err", res.Err)
	}
	ans := writeAnswers.For(res)
	if res.Outcome != adapters.Stored {
		http.Error(w, ans.Message, ans.Status)
		return
	}
	if err := a.link(r.Context(), p, false); err != nil {
		a.log.Warn("webdav: file stored but not listed in its collection", "path", string(p), "err", err)
	}
	w.Header().Set("ETag", `"`+res.Hash+`"`)
	w.WriteHeader(ans.Status)
}

// mkcol creates an empty collection: 201, or 405 when something exists at
// the path, 409 when its parent does not exist (RFC 4918 9.3.1), 415 when
// the request has a body (extended MKCOL is not supported).
func (a *Adapter) mkcol(w http.ResponseWriter, r *http.Request, p davPath) {
	defer a.opts.Metrics.ObserveRequest(buildSystem, "mkcol", time.Now())
	if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
		http.Error(w, "MKCOL with a body is not supported", http.StatusUnsupportedMediaType)
		return
	}
	ctx := r.Context()
	if _, exists := a.lookup(ctx, p, true); exists {
		w.Header().Set("Allow", allowed)
		http.Error(w, "already exists", http.StatusMethodNotAllowed)
		return
	}
	if parent, ok := a.lookup(ctx, p.parent(), true); !ok || !parent.collection {
		http.Error(w, "parent collection does not exist", http.StatusConflict)
		return
	}
	if err := a.writeListing(ctx, p, nil); err != nil {
		a.log.Error("webdav: mkcol failed", "path", string(p), "err", err)
		http.Error(w, "cannot create collection", http.StatusInternalServerError)
		return
	}
	if err := a.link(ctx, p, true); err != nil {
		a.log.Warn("webdav: collection created but not listed in its parent", "path", string(p), "err", err)
	}
	w.WriteHeader(http.StatusCreated)
}

// maxDeleteEntries bounds one recursive DELETE.
const maxDeleteEntries = 100000

// delete removes a file, or a collection with everything listed in it: 204,
// or 404 when nothing is there. The root cannot be deleted (403).
func (a *Adapter) delete(w http.ResponseWriter, r *http.Request, p davPath, slash bool) {
	defer a.opts.Metrics.ObserveRequest(buildSystem, "delete", time.Now())
	ctx := r.Context()
	if p.isRoot() {
		http.Error(w, "the root collection cannot be deleted", http.StatusForbidden)
		return
	}
	res, ok := a.lookup(ctx, p, slash)
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	budget := maxDeleteEntries
	if err := a.remove(ctx, p, res.collection, &budget); err != nil {
		a.log.Error("webdav: delete failed", "path", string(p), "err", err)
		http.Error(w, "cannot delete", http.StatusInternalServerError)
		return
	}
	if err := a.unlink(ctx, p, res.collection); err != nil {
		a.log.Warn("webdav: deleted but still listed in its parent", "path", string(p), "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
}

// remove deletes p's entry and, for a collection, its members first.
func (a *Adapter) remove(ctx context.Context, p davPath, collection bool, budget *int) error {
	if *budget--; *budget < 0 {
		return errors.New("collection too large to delete in one request")
	}
	if !collection {
		return a.cache.Delete(ctx, a.ref(p.fileKey()))
	}
	members, _, _, err := a.readListing(ctx, p)
	if err != nil {
		return err
	}
	for _, m := range members {
		name, isColl := m, false
		if m[len(m)-1] == '/' {
			name, isColl = m[:len(m)-1], true
		}
		if err := a.remove(ctx, p.child(name), isColl, budget); err != nil {
			return err
		}
	}
	return a.cache.Delete(ctx, a.ref(p.collectionKey()))
}
