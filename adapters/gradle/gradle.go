// Package gradle is the Gradle HTTP build cache adapter: GET and PUT
// /cache/{key}, per Gradle's HttpBuildCache protocol. Gradle disables the
// remote cache for the rest of a build on any unexpected status, so every
// ordinary condition maps to the status Gradle expects: 404 for a miss, 413
// for too large, 507 when the store is full.
package gradle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/metrics"
	"github.com/tuist/fabrik-node/tier"
)

// Namespace holds Gradle's cache keys in the key index.
const Namespace = "gradle"

// contentType is what Gradle sends and accepts; v1 from older Gradle is
// accepted on PUT too (the body is opaque to us).
const contentType = "application/vnd.gradle.build-cache-artifact.v2"

// Options configure the adapter.
type Options struct {
	// MaxArtifactSize refuses larger uploads with 413 before the body is read.
	MaxArtifactSize int64
	Guard           adapters.Guard
	Metrics         *metrics.Set
	Logger          *slog.Logger
}

// Adapter serves Gradle's protocol over a Cache.
type Adapter struct {
	cache adapters.Cache
	opts  Options
}

// New returns a Gradle adapter.
func New(cache adapters.Cache, opts Options) *Adapter {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
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
	a.opts.Metrics.Downloaded(n)
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

func (a *Adapter) put(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer a.observe("put", start)
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	max := a.opts.MaxArtifactSize
	// Refusing on the declared length happens before the body is read, so
	// Go answers an Expect: 100-continue upload with 413 and no transfer.
	if max > 0 && r.ContentLength > max {
		http.Error(w, fmt.Sprintf("artifact of %d bytes exceeds the maximum of %d", r.ContentLength, max), http.StatusRequestEntityTooLarge)
		return
	}
	staged, err := a.cache.Stage("", r.ContentLength)
	if err != nil {
		a.opts.Logger.Error("gradle: staging failed", "err", err)
		http.Error(w, "cannot store artifact", http.StatusInternalServerError)
		return
	}
	body := io.Reader(r.Body)
	if max > 0 && r.ContentLength < 0 {
		body = io.LimitReader(r.Body, max+1)
	}
	n, err := adapters.Copy(staged, body)
	a.opts.Metrics.Uploaded(n)
	switch {
	case errors.Is(err, tier.ErrFull):
		staged.Discard()
		http.Error(w, "cache is full", http.StatusInsufficientStorage)
		return
	case err != nil:
		staged.Discard()
		http.Error(w, fmt.Sprintf("upload incomplete after %d bytes: %v", n, err), http.StatusBadRequest)
		return
	case max > 0 && n > max:
		staged.Discard()
		http.Error(w, fmt.Sprintf("artifact exceeds the maximum of %d bytes", max), http.StatusRequestEntityTooLarge)
		return
	}
	if err := staged.Seal(); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, tier.ErrFull) {
			code = http.StatusInsufficientStorage
		}
		http.Error(w, err.Error(), code)
		return
	}
	err = a.cache.Put(r.Context(), ref, messages.Meta{BuildSystem: "gradle"}, staged)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, tier.ErrFull):
		http.Error(w, "cache is full", http.StatusInsufficientStorage)
	case errors.Is(err, tier.ErrInvalid):
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		a.opts.Logger.Error("gradle: store failed", "key", ref.Key, "err", err)
		http.Error(w, "cannot store artifact", http.StatusInternalServerError)
	}
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
