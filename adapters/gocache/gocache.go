// Package gocache is the edge's side of the go command's build cache: the
// HTTP endpoint `fabrik-node gocacheprog` (the GOCACHEPROG helper) reads and
// writes under /gocache/.
//
//	GET  /gocache/{actionID}  200 + body, X-Go-Output-Id, X-Go-Time, Content-Length; 404 miss
//	HEAD /gocache/{actionID}  the same headers, no body
//	PUT  /gocache/{actionID}  body = the output; X-Go-Output-Id (optional) and X-Go-Time
//
// The action ID is the go command's cache key (a SHA-256, 64 hex digits):
// it lives in the gocache namespace and resolves to a blob in the CAS. The
// output ID is the SHA-256 of the output itself (cmd/go computes it so on
// every put), so it is the blob's hash: the adapter verifies it on PUT and
// stores nothing else for it.
package gocache

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// Namespace holds the go command's action IDs in the key index.
const Namespace = "gocache"

// buildSystem labels the adapter's metrics and artifacts.
const buildSystem = "gocache"

// Headers of the wire format, shared with the helper (package gocacheprog).
const (
	// HeaderOutputID carries the output ID (hex SHA-256 of the body).
	HeaderOutputID = "X-Go-Output-Id"
	// HeaderTime carries when the entry was first put (RFC 3339, nanoseconds).
	// The go command compares it with `go clean -testcache`'s cut-off, so it
	// must travel with the entry, not be the time an edge last stored it.
	HeaderTime = "X-Go-Time"
)

// attrTime is the Meta.Attrs key of the entry's put time.
const attrTime = "time"

// Options configure the adapter.
type Options = adapters.HTTPOptions

// Adapter serves the go build cache endpoint over a Cache.
type Adapter struct {
	cache adapters.Cache
	opts  Options
}

// New returns a gocache adapter.
func New(cache adapters.Cache, opts Options) *Adapter {
	opts = opts.WithDefaults()
	return &Adapter{cache: cache, opts: opts}
}

// Routes registers the adapter's paths on the shared HTTP listener.
func (a *Adapter) Routes(mux *http.ServeMux) {
	mux.Handle("GET /gocache/{action}", a.opts.Guard.Wrap(adapters.Read, http.HandlerFunc(a.get)))
	mux.Handle("HEAD /gocache/{action}", a.opts.Guard.Wrap(adapters.Read, http.HandlerFunc(a.head)))
	mux.Handle("PUT /gocache/{action}", a.opts.Guard.Wrap(adapters.Write, http.HandlerFunc(a.put)))
}

// ref is the action ID of the request, or a 400 when it is not one.
func (a *Adapter) ref(w http.ResponseWriter, r *http.Request) (messages.Ref, bool) {
	id, ok := ParseID(r.PathValue("action"))
	if !ok {
		http.Error(w, "malformed action ID: expected 64 hexadecimal characters", http.StatusBadRequest)
		return messages.Ref{}, false
	}
	return messages.Ref{Namespace: Namespace, Key: id}, true
}

// ParseID accepts a go cache ID (action or output: SHA-256, 64 hex digits)
// and returns it in lower case, the form keys and blob hashes use.
func ParseID(s string) (string, bool) {
	if len(s) != 64 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// entryHeaders are what a hit tells the helper besides the body.
func entryHeaders(h http.Header, meta messages.Meta) {
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(meta.Size, 10))
	h.Set(HeaderOutputID, meta.Hash)
	t := meta.CreatedAt
	if v, err := time.Parse(time.RFC3339Nano, meta.Attrs[attrTime]); err == nil {
		t = v
	}
	if !t.IsZero() {
		h.Set(HeaderTime, t.UTC().Format(time.RFC3339Nano))
	}
}

func (a *Adapter) get(w http.ResponseWriter, r *http.Request) {
	defer a.observe("get", time.Now())
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	res, err := a.cache.Get(r.Context(), ref)
	if err != nil {
		a.opts.Logger.Warn("gocache: lookup failed, answering a miss", "action", ref.Key, "err", err)
	}
	if err != nil || !res.Found {
		a.count(false)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	defer res.Body.Close()
	a.count(true)
	entryHeaders(w.Header(), res.Meta)
	w.WriteHeader(http.StatusOK)
	n, err := adapters.SendBody(w, res.Body, res.Meta.Size)
	a.opts.Metrics.Downloaded(n)
	if err != nil && !errors.Is(err, context.Canceled) {
		// The status is sent; the short body is what tells the helper,
		// which verifies size and output ID before it keeps anything.
		a.opts.Logger.Warn("gocache: response aborted", "action", ref.Key, "sent", n, "err", err)
	}
}

func (a *Adapter) head(w http.ResponseWriter, r *http.Request) {
	defer a.observe("head", time.Now())
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	res, err := a.cache.Stat(r.Context(), ref)
	if err != nil || !res.Found {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	entryHeaders(w.Header(), res.Meta)
	w.WriteHeader(http.StatusOK)
}

// writeAnswers is the helper's reading of each upload outcome. The helper
// only logs a refusal (the entry stays in its local directory), so the
// statuses need only be truthful.
var writeAnswers = adapters.StatusTable{
	adapters.Stored:      {Status: http.StatusNoContent},
	adapters.TooLarge:    {Status: http.StatusRequestEntityTooLarge, Message: "not stored"},
	adapters.Full:        {Status: http.StatusInsufficientStorage, Message: "cache is full"},
	adapters.Truncated:   {Status: http.StatusBadRequest, Message: "not stored"},
	adapters.Invalid:     {Status: http.StatusBadRequest, Message: "not stored"},
	adapters.Unavailable: {Status: http.StatusServiceUnavailable, Message: "the cache cannot store entries right now"},
	adapters.Internal:    {Status: http.StatusInternalServerError, Message: "cannot store entry"},
}

func (a *Adapter) put(w http.ResponseWriter, r *http.Request) {
	defer a.observe("put", time.Now())
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	// The output ID is optional on the wire (it is the body's SHA-256
	// anyway); when given, the write path verifies the body against it.
	var outputID string
	if v := r.Header.Get(HeaderOutputID); v != "" {
		if outputID, ok = ParseID(v); !ok {
			http.Error(w, "malformed "+HeaderOutputID+": expected 64 hexadecimal characters", http.StatusBadRequest)
			return
		}
	}
	meta := messages.Meta{BuildSystem: buildSystem}
	if v := r.Header.Get(HeaderTime); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			http.Error(w, "malformed "+HeaderTime+": expected an RFC 3339 time", http.StatusBadRequest)
			return
		}
		meta.Attrs = map[string]string{attrTime: t.UTC().Format(time.RFC3339Nano)}
	}
	res := adapters.Store(r.Context(), a.cache, ref, meta, adapters.Upload{
		Body: r.Body, Length: r.ContentLength, Hash: outputID, Max: a.opts.MaxArtifactSize,
	})
	a.opts.Metrics.Uploaded(res.Size)
	switch res.Outcome {
	case adapters.Stored:
	case adapters.Internal, adapters.Unavailable:
		a.opts.Logger.Error("gocache: store failed", "action", ref.Key, "outcome", res.Outcome, "err", res.Err)
	default:
		a.opts.Logger.Info("gocache: upload not stored", "action", ref.Key, "outcome", res.Outcome, "err", res.Err)
	}
	ans := writeAnswers.For(res)
	if res.Outcome == adapters.Stored {
		w.WriteHeader(ans.Status)
		return
	}
	http.Error(w, ans.Message, ans.Status)
}

func (a *Adapter) observe(op string, start time.Time) {
	a.opts.Metrics.ObserveRequest(buildSystem, op, start)
}

// count records a hit or miss for the go build cache.
func (a *Adapter) count(hit bool) {
	if hit {
		a.opts.Metrics.Hit(buildSystem)
	} else {
		a.opts.Metrics.Miss(buildSystem)
	}
}
