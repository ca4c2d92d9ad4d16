package turbo

import (
	"net/http"
	"strconv"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
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
	a.opts.Metrics.DownloadedBy(buildSystem, n)
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
	res := adapters.Store(r.Context(), a.cache, ref, meta, adapters.Upload{
		Body: r.Body, Length: r.ContentLength, Max: a.opts.MaxArtifactSize,
	})
	if res.Outcome != adapters.Stored {
		if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
			a.log.Error("store failed", "ref", ref.String(), "outcome", res.Outcome, "err", res.Err)
		} else {
			a.log.Info("upload not stored", "ref", ref.String(), "outcome", res.Outcome, "received", res.Size, "declared", r.ContentLength, "err", res.Err)
		}
		ans := writeAnswers.For(res)
		writeError(w, ans.Status, errorCodes[res.Outcome], ans.Message)
		return
	}
	size := res.Size
	a.opts.Metrics.UploadedBy(buildSystem, size)
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

// writeAnswers is Turborepo's reading of each upload outcome, with the
// error code Vercel's API puts in the JSON body next to it. A full cache is
// a 4xx, not 507: turbo pauses its remote cache for the whole run after a
// few 5xx answers in a row, and a full store must cost one entry, never the
// cache. Only real outages (unavailable, internal) are 5xx.
var writeAnswers = adapters.StatusTable{
	adapters.Stored:      {Status: http.StatusAccepted},
	adapters.TooLarge:    {Status: http.StatusRequestEntityTooLarge, Message: "not stored"},
	adapters.Full:        {Status: http.StatusRequestEntityTooLarge, Message: "the cache is full; not stored"},
	adapters.Truncated:   {Status: http.StatusBadRequest, Message: "incomplete upload; not stored"},
	adapters.Invalid:     {Status: http.StatusBadRequest, Message: "artifact rejected"},
	adapters.Unavailable: {Status: http.StatusServiceUnavailable, Message: "the cache cannot store artifacts right now"},
	adapters.Internal:    {Status: http.StatusInternalServerError, Message: "the cache could not store the artifact"},
}

var errorCodes = map[adapters.Outcome]string{
	adapters.TooLarge:    "payload_too_large",
	adapters.Full:        "insufficient_storage",
	adapters.Truncated:   "bad_request",
	adapters.Invalid:     "bad_request",
	adapters.Unavailable: "service_unavailable",
	adapters.Internal:    "internal_error",
}
