// Package ccache serves ccache's HTTP remote storage (ccache 4.4 and later,
// `remote_storage = "http://host:5071/ccache|layout=subdirs"`): GET, HEAD,
// PUT and DELETE under /ccache/.
//
// ccache treats any non-2xx answer to a GET as a miss and any non-2xx answer
// to a PUT as "not stored" (counted as remote_storage_error), and never fails
// a compilation because of its remote storage, so the statuses only need to
// be honest: 404 for a miss, 413, 507 and 503 for the refusals.
//
// All three layouts ccache sends are served: subdirs (/ccache/01/4ft174j5...),
// flat (/ccache/014ft174j5...) and bazel (/ccache/ac/<64 hex>). The key is
// the whole path after /ccache/, so a client that appends its own prefix
// (http://host/ccache/team-a) gets a partition of its own.
package ccache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// Namespace holds ccache's keys in the key index; bodies are CAS blobs.
const Namespace = "ccache"

// buildSystem labels ccache artifacts and requests in metrics and stats.
const buildSystem = "ccache"

// Prefix is the URL path the adapter serves.
const Prefix = "/ccache/"

// maxKeyLen bounds a key: ccache's own keys are 32 to 67 characters; the
// bound leaves room for a client-chosen prefix.
const maxKeyLen = 512

// Options configure an Adapter. ccache sends the token as the Basic
// password (http://user:TOKEN@host/ccache) or as a Bearer token
// (|bearer-token=TOKEN).
type Options = adapters.HTTPOptions

// Adapter serves ccache's HTTP storage protocol over an adapters.Cache.
type Adapter struct {
	cache adapters.Cache
	opts  Options
	log   *slog.Logger
}

// New returns an Adapter storing into cache.
func New(cache adapters.Cache, opts Options) *Adapter {
	opts = opts.WithDefaults()
	return &Adapter{cache: cache, opts: opts, log: opts.Logger.With("adapter", buildSystem)}
}

// Routes registers the ccache endpoints on mux.
func (a *Adapter) Routes(mux *http.ServeMux) {
	mux.Handle("GET "+Prefix+"{key...}", a.opts.Guard.Wrap(adapters.Read, http.HandlerFunc(a.get)))
	mux.Handle("HEAD "+Prefix+"{key...}", a.opts.Guard.Wrap(adapters.Read, http.HandlerFunc(a.head)))
	mux.Handle("PUT "+Prefix+"{key...}", a.opts.Guard.Wrap(adapters.Write, http.HandlerFunc(a.put)))
	mux.Handle("DELETE "+Prefix+"{key...}", a.opts.Guard.Wrap(adapters.Write, http.HandlerFunc(a.delete)))
}

func (a *Adapter) ref(w http.ResponseWriter, r *http.Request) (messages.Ref, bool) {
	key := r.PathValue("key")
	if err := validKey(key); err != nil {
		http.Error(w, fmt.Sprintf("malformed ccache key %q: %v", key, err), http.StatusBadRequest)
		return messages.Ref{}, false
	}
	return messages.Ref{Namespace: Namespace, Key: key}, true
}

func (a *Adapter) get(w http.ResponseWriter, r *http.Request) {
	defer a.opts.Metrics.ObserveRequest(buildSystem, "get", time.Now())
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	res, err := a.cache.Get(r.Context(), ref)
	if err != nil || !res.Found {
		a.opts.Metrics.Miss(buildSystem)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	a.opts.Metrics.Hit(buildSystem)
	defer res.Body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(res.Meta.Size, 10))
	n, err := adapters.SendBody(w, res.Body, res.Meta.Size)
	a.opts.Metrics.Downloaded(n)
	if err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn("ccache: response aborted", "key", ref.Key, "sent", n, "err", err)
	}
}

// head answers ccache's reshare check: a 2xx makes it skip the PUT.
func (a *Adapter) head(w http.ResponseWriter, r *http.Request) {
	defer a.opts.Metrics.ObserveRequest(buildSystem, "head", time.Now())
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	res, err := a.cache.Stat(r.Context(), ref)
	if err != nil || !res.Found {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(res.Meta.Size, 10))
}

// writeAnswers is ccache's reading of each upload outcome: any 2xx is
// "stored", anything else an error ccache counts and carries on from.
var writeAnswers = adapters.StatusTable{
	adapters.Stored:      {Status: http.StatusOK},
	adapters.TooLarge:    {Status: http.StatusRequestEntityTooLarge, Message: "not stored"},
	adapters.Full:        {Status: http.StatusInsufficientStorage, Message: "cache is full"},
	adapters.Truncated:   {Status: http.StatusBadRequest, Message: "not stored"},
	adapters.Invalid:     {Status: http.StatusBadRequest, Message: "not stored"},
	adapters.Unavailable: {Status: http.StatusServiceUnavailable, Message: "the cache cannot store artifacts right now"},
	adapters.Internal:    {Status: http.StatusInternalServerError, Message: "cannot store artifact"},
}

func (a *Adapter) put(w http.ResponseWriter, r *http.Request) {
	defer a.opts.Metrics.ObserveRequest(buildSystem, "put", time.Now())
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	res := adapters.Store(r.Context(), a.cache, ref, messages.Meta{BuildSystem: buildSystem}, adapters.Upload{
		Body: r.Body, Length: r.ContentLength, Max: a.opts.MaxArtifactSize,
	})
	a.opts.Metrics.Uploaded(res.Size)
	if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
		a.log.Error("ccache: store failed", "key", ref.Key, "outcome", res.Outcome, "err", res.Err)
	}
	ans := writeAnswers.For(res)
	if res.Outcome == adapters.Stored {
		w.WriteHeader(ans.Status)
		return
	}
	http.Error(w, ans.Message, ans.Status)
}

func (a *Adapter) delete(w http.ResponseWriter, r *http.Request) {
	defer a.opts.Metrics.ObserveRequest(buildSystem, "delete", time.Now())
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	st, err := a.cache.Stat(r.Context(), ref)
	if err != nil || !st.Found {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if err := a.cache.Delete(r.Context(), ref); err != nil {
		a.log.Error("ccache: delete failed", "key", ref.Key, "err", err)
		http.Error(w, "cannot delete artifact", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// validKey accepts the keys of ccache's three layouts, under any prefix of
// plain path segments, and nothing that could escape a path or smuggle
// control characters into logs.
func validKey(k string) error {
	if k == "" {
		return errors.New("empty")
	}
	if len(k) > maxKeyLen {
		return fmt.Errorf("longer than %d characters", maxKeyLen)
	}
	for _, seg := range strings.Split(k, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("empty, . or .. path segment")
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.') {
				return fmt.Errorf("character %q not allowed", c)
			}
		}
	}
	return nil
}
