package turbo

import (
	"errors"
	"io"
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

// artifactHeaders sets what turbo reads from a hit: the task duration it
// reports as time saved, and the signature tag it verifies when signing is on.
func artifactHeaders(h http.Header, meta messages.Meta) {
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(meta.Size, 10))
	if d, ok := meta.Attrs[attrDuration]; ok {
		h.Set(attrDuration, d)
	}
	if t, ok := meta.Attrs[attrTag]; ok {
		h.Set(attrTag, t)
	}
	h.Set("Access-Control-Expose-Headers", "x-artifact-duration, x-artifact-tag")
}

func notFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "not_found", "Artifact not found")
}

// get streams an artifact with its headers; a miss, or a failed lookup, is 404.
func (a *Adapter) get(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		a.head(w, r)
		return
	}
	defer a.observe("get", time.Now())
	ref, why, ok := ref(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_request", why)
		return
	}
	res, err := a.cache.Get(r.Context(), ref)
	if err != nil {
		a.log.Warn("lookup failed, answering a miss", "ref", ref.String(), "err", err)
	}
	if err != nil || !res.Found {
		a.opts.Metrics.Miss(buildSystem)
		notFound(w)
		return
	}
	defer res.Body.Close()
	a.opts.Metrics.Hit(buildSystem)
	artifactHeaders(w.Header(), res.Meta)
	w.WriteHeader(http.StatusOK)
	n, err := adapters.SendBody(w, res.Body, res.Meta.Size)
	a.opts.Metrics.Downloaded(n)
	if err != nil {
		// The status is already sent; a short body is what tells the client.
		a.log.Debug("download interrupted", "ref", ref.String(), "sent", n, "err", err)
	}
}

// head answers from metadata alone: turbo uses it to learn whether an
// artifact exists and how long its task took, without downloading it.
func (a *Adapter) head(w http.ResponseWriter, r *http.Request) {
	defer a.observe("head", time.Now())
	ref, _, ok := ref(r)
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	st, err := a.cache.Stat(r.Context(), ref)
	if err != nil {
		a.log.Warn("stat failed, answering a miss", "ref", ref.String(), "err", err)
	}
	if err != nil || !st.Found {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	artifactHeaders(w.Header(), st.Meta)
	w.WriteHeader(http.StatusOK)
}

// put stores an artifact with its duration and tag, replacing any earlier
// upload of the hash (as Vercel's cache does), and answers 202.
func (a *Adapter) put(w http.ResponseWriter, r *http.Request) {
	defer a.observe("put", time.Now())
	ref, why, ok := ref(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_request", why)
		return
	}
	meta := messages.Meta{BuildSystem: buildSystem, Attrs: map[string]string{}}
	if d := r.Header.Get(attrDuration); d != "" {
		// turbo parses the duration back as an unsigned integer and fails
		// the hit if it cannot, so garbage is refused at the door.
		if _, err := strconv.ParseUint(d, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "x-artifact-duration must be a whole number of milliseconds")
			return
		}
		meta.Attrs[attrDuration] = d
	}
	if t := r.Header.Get(attrTag); t != "" {
		meta.Attrs[attrTag] = t
	}
	max := a.opts.MaxArtifactSize
	if max > 0 && r.ContentLength > max {
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", tooLarge(max))
		return
	}

	staged, err := a.cache.Stage("", r.ContentLength)
	if err != nil {
		a.log.Error("cannot stage upload", "ref", ref.String(), "err", err)
		writeError(w, http.StatusInternalServerError, "internal_error", "the cache cannot store artifacts right now")
		return
	}
	body := io.Reader(r.Body)
	if r.ContentLength < 0 && max > 0 {
		// A chunked body declares no size: stop one byte past the limit.
		body = io.LimitReader(r.Body, max+1)
	}
	_, err = adapters.Copy(staged, body)
	if err == nil && max > 0 && staged.Written() > max {
		staged.Discard()
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", tooLarge(max))
		return
	}
	if errors.Is(err, tier.ErrFull) {
		staged.Discard()
		a.log.Warn("disk full, upload not stored", "ref", ref.String(), "err", err)
		writeError(w, http.StatusInsufficientStorage, "insufficient_storage", "the cache is full")
		return
	}
	if err != nil {
		staged.Discard()
		a.log.Info("upload rejected", "ref", ref.String(), "received", staged.Written(), "declared", r.ContentLength, "err", err)
		writeError(w, http.StatusBadRequest, "bad_request", "incomplete upload; not stored")
		return
	}
	if err := staged.Seal(); err != nil {
		a.log.Info("upload rejected", "ref", ref.String(), "err", err)
		writeError(w, http.StatusBadRequest, "bad_request", "incomplete upload; not stored")
		return
	}
	size := staged.Size()
	if err := a.cache.Put(r.Context(), ref, meta, staged); err != nil {
		switch {
		case errors.Is(err, tier.ErrFull):
			a.log.Warn("cache full, upload not stored", "ref", ref.String())
			writeError(w, http.StatusInsufficientStorage, "insufficient_storage", "the cache is full")
		case errors.Is(err, tier.ErrInvalid):
			writeError(w, http.StatusBadRequest, "bad_request", "artifact rejected: "+err.Error())
		default:
			a.log.Error("store failed", "ref", ref.String(), "err", err)
			writeError(w, http.StatusInternalServerError, "internal_error", "the cache could not store the artifact")
		}
		return
	}
	a.opts.Metrics.Uploaded(size)
	writeJSON(w, http.StatusAccepted, struct {
		URLs []string `json:"urls"`
	}{URLs: []string{artifactURL(r)}})
}

// artifactURL is where the stored artifact can be fetched, team included.
func artifactURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

func tooLarge(max int64) string {
	return "artifact exceeds this cache's limit of " + strconv.FormatInt(max, 10) + " bytes"
}
