// Package gradle is the Gradle HTTP build cache adapter: GET and PUT
// /cache/{key}, per Gradle's HttpBuildCache protocol. Gradle disables the
// remote cache for the rest of a build on any unexpected status, so every
// ordinary condition maps to the status Gradle expects: 404 for a miss, 413
// for too large and for a full store.
package gradle

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// Namespace holds Gradle's cache keys in the key index.
const Namespace = "gradle"

// contentType is what Gradle sends and accepts; v1 from older Gradle is
// accepted on PUT too (the body is opaque to us).
const contentType = "application/vnd.gradle.build-cache-artifact.v2"

// Options configure the adapter.
type Options = adapters.HTTPOptions

// Adapter serves Gradle's protocol over a Cache.
type Adapter struct {
	cache adapters.Cache
	opts  Options
}

// New returns a Gradle adapter.
func New(cache adapters.Cache, opts Options) *Adapter {
	opts = opts.WithDefaults()
	return &Adapter{cache: cache, opts: opts}
}

// Routes registers the adapter's paths on the shared HTTP listener.
func (a *Adapter) Routes(mux *http.ServeMux) {
	mux.Handle("GET /cache/{key}", a.opts.Guard.Wrap(adapters.Read, http.HandlerFunc(a.get)))
	mux.Handle("HEAD /cache/{key}", a.opts.Guard.Wrap(adapters.Read, http.HandlerFunc(a.head)))
	mux.Handle("PUT /cache/{key}", a.opts.Guard.Wrap(adapters.Write, http.HandlerFunc(a.put)))
}

func (a *Adapter) ref(w http.ResponseWriter, r *http.Request) (messages.Ref, bool) {
	key := r.PathValue("key")
	if !validKey(key) {
		http.Error(w, fmt.Sprintf("malformed Gradle cache key %q: expected 8 to 128 hexadecimal characters", key), http.StatusBadRequest)
		return messages.Ref{}, false
	}
	return messages.Ref{Namespace: Namespace, Key: key}, true
}

func (a *Adapter) get(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer a.observe("get", start)
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	res, err := a.cache.Get(r.Context(), ref)
	if err != nil || !res.Found {
		a.count(false)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	a.count(true)
	defer res.Body.Close()
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.FormatInt(res.Meta.Size, 10))
	n, err := adapters.SendBody(w, res.Body, res.Meta.Size)
	a.opts.Metrics.DownloadedBy("gradle", n)
	if err != nil && !errors.Is(err, context.Canceled) {
		a.opts.Logger.Warn("gradle: response aborted", "key", ref.Key, "sent", n, "err", err)
	}
}

func (a *Adapter) head(w http.ResponseWriter, r *http.Request) {
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	res, err := a.cache.Stat(r.Context(), ref)
	if err != nil || !res.Found {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.FormatInt(res.Meta.Size, 10))
}

// writeAnswers is Gradle's reading of each upload outcome. Gradle treats
// 413 as "not stored" and carries on; any other non-2xx status (507
// included) turns the remote cache off for the rest of the build, reads
// too. So a full store answers 413: it costs one entry, never the cache.
var writeAnswers = adapters.StatusTable{
	adapters.Stored:      {Status: http.StatusOK},
	adapters.TooLarge:    {Status: http.StatusRequestEntityTooLarge, Message: "not stored"},
	adapters.Full:        {Status: http.StatusRequestEntityTooLarge, Message: "cache is full; not stored"},
	adapters.Truncated:   {Status: http.StatusBadRequest, Message: "not stored"},
	adapters.Invalid:     {Status: http.StatusBadRequest, Message: "not stored"},
	adapters.Unavailable: {Status: http.StatusServiceUnavailable, Message: "the cache cannot store artifacts right now"},
	adapters.Internal:    {Status: http.StatusInternalServerError, Message: "cannot store artifact"},
}

func (a *Adapter) put(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer a.observe("put", start)
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	// A declared length over the limit is refused before the body is read,
	// so Go answers an Expect: 100-continue upload with 413 and no transfer.
	res := adapters.Store(r.Context(), a.cache, ref, messages.Meta{BuildSystem: "gradle"}, adapters.Upload{
		Body: r.Body, Length: r.ContentLength, Max: a.opts.MaxArtifactSize,
	})
	a.opts.Metrics.UploadedBy("gradle", res.Size)
	if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
		a.opts.Logger.Error("gradle: store failed", "key", ref.Key, "outcome", res.Outcome, "err", res.Err)
	}
	ans := writeAnswers.For(res)
	if res.Outcome == adapters.Stored {
		w.WriteHeader(ans.Status)
		return
	}
	http.Error(w, ans.Message, ans.Status)
}

// validKey accepts what Gradle generates (hex digests: 32 characters in
// Gradle 4, 64 in later versions) and nothing that could escape a path.
func validKey(k string) bool {
	if len(k) < 8 || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func (a *Adapter) observe(op string, start time.Time) {
	a.opts.Metrics.ObserveRequest("gradle", op, start)
}

// count records a hit or miss: adapters count them because only they know
// what a hit means in their protocol.
func (a *Adapter) count(hit bool) {
	if hit {
		a.opts.Metrics.Hit("gradle")
	} else {
		a.opts.Metrics.Miss("gradle")
	}
}
