package nx

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

func (a *Adapter) observe(op string, start time.Time) {
	a.opts.Metrics.ObserveRequest(buildSystem, op, start)
}

// get streams a cached artifact: 200 with the body, 404 on a miss. A failing
// lookup is a miss too: Nx then rebuilds the task instead of stopping.
func (a *Adapter) get(w http.ResponseWriter, r *http.Request) {
	defer a.observe("get", time.Now())
	ref, ok := ref(r)
	if !ok {
		writeText(w, http.StatusBadRequest, "malformed hash")
		return
	}
	if r.Method == http.MethodHead {
		a.head(w, r, ref)
		return
	}
	res, err := a.cache.Get(r.Context(), ref)
	if err != nil {
		a.log.Warn("lookup failed, answering a miss", "ref", ref.String(), "err", err)
	}
	if err != nil || !res.Found {
		a.opts.Metrics.Miss(buildSystem)
		writeText(w, http.StatusNotFound, "not found")
		return
	}
	defer res.Body.Close()
	a.opts.Metrics.Hit(buildSystem)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(res.Meta.Size, 10))
	w.WriteHeader(http.StatusOK)
	n, err := adapters.SendBody(w, res.Body, res.Meta.Size)
	a.opts.Metrics.Downloaded(n)
	if err != nil {
		// The status is already sent; a short body is what tells the client.
		a.log.Debug("download interrupted", "ref", ref.String(), "sent", n, "err", err)
	}
}

// head answers from metadata alone. Nx itself never sends HEAD, but the GET
// pattern matches it, and opening the blob only to discard it would be waste.
func (a *Adapter) head(w http.ResponseWriter, r *http.Request, ref messages.Ref) {
	st, err := a.cache.Stat(r.Context(), ref)
	if err != nil || !st.Found {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(st.Meta.Size, 10))
	w.WriteHeader(http.StatusOK)
}

// put stores an upload once: 200 when stored, 409 when the hash already has a
// record (Nx entries are immutable), 403 when the node will not store it.
func (a *Adapter) put(w http.ResponseWriter, r *http.Request) {
	defer a.observe("put", time.Now())
	ref, ok := ref(r)
	if !ok {
		writeText(w, http.StatusBadRequest, "malformed hash")
		return
	}
	// Without a declared length a cut-off upload cannot be told from a
	// complete one, and Nx would keep a corrupt entry forever.
	if r.ContentLength < 0 {
		writeText(w, http.StatusLengthRequired, "Content-Length is required")
		return
	}
	if max := a.opts.MaxArtifactSize; max > 0 && r.ContentLength > max {
		writeText(w, http.StatusForbidden, "artifact of "+strconv.FormatInt(r.ContentLength, 10)+
			" bytes exceeds this cache's limit of "+strconv.FormatInt(max, 10)+" bytes; not stored")
		return
	}
	// Claim the hash before checking for a record, so that of two
	// concurrent uploads exactly one stores and the other sees 409.
	if _, busy := a.uploading.LoadOrStore(ref, struct{}{}); busy {
		writeText(w, http.StatusConflict, "Cannot override an existing record")
		return
	}
	defer a.uploading.Delete(ref)
	st, err := a.cache.Stat(r.Context(), ref)
	if err == nil && st.Found {
		writeText(w, http.StatusConflict, "Cannot override an existing record")
		return
	}

	staged, err := a.cache.Stage("", r.ContentLength)
	if err != nil {
		a.log.Error("cannot stage upload", "ref", ref.String(), "err", err)
		writeText(w, http.StatusForbidden, "the cache cannot store artifacts right now")
		return
	}
	_, err = adapters.Copy(staged, r.Body)
	if errors.Is(err, tier.ErrFull) {
		// A full disk: refuse the way Nx carries on from (see put's 403s).
		staged.Discard()
		a.log.Warn("disk full, upload not stored", "ref", ref.String(), "err", err)
		writeText(w, http.StatusForbidden, "the cache cannot store artifacts right now")
		return
	}
	if err != nil {
		staged.Discard()
		a.log.Info("upload rejected", "ref", ref.String(), "received", staged.Written(), "declared", r.ContentLength, "err", err)
		writeText(w, http.StatusBadRequest, "incomplete upload; not stored")
		return
	}
	if err := staged.Seal(); err != nil {
		a.log.Info("upload rejected", "ref", ref.String(), "err", err)
		writeText(w, http.StatusBadRequest, "incomplete upload; not stored")
		return
	}
	size := staged.Size()
	if err := a.cache.Put(r.Context(), ref, messages.Meta{BuildSystem: buildSystem}, staged); err != nil {
		switch {
		case errors.Is(err, tier.ErrFull):
			a.log.Warn("cache full, upload not stored", "ref", ref.String())
			writeText(w, http.StatusForbidden, "the cache is full; not stored")
		case errors.Is(err, tier.ErrInvalid):
			writeText(w, http.StatusBadRequest, "artifact rejected: "+err.Error())
		default:
			a.log.Error("store failed", "ref", ref.String(), "err", err)
			writeText(w, http.StatusForbidden, "the cache could not store the artifact")
		}
		return
	}
	a.opts.Metrics.Uploaded(size)
	w.WriteHeader(http.StatusOK)
}
