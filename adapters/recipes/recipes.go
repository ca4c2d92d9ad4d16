// Package recipes is the edge's HTTP API for `fabrik-node run`:
// /recipes/v1/{runs|kv}/{key} (GET, HEAD, PUT, DELETE) for recipe entries
// and /recipes/v1/ledger for the run ledger. When a daemon owns the cache
// directory the CLI cannot open the store itself, so it stores and restores
// through this adapter; uploads take the one shared write path.
package recipes

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/recipe/backend"
)

// Options configure the adapter.
type Options struct {
	adapters.HTTPOptions
	// LedgerPath is the ledger file (in the cache directory).
	LedgerPath string
}

// Adapter serves the recipes API over a Cache.
type Adapter struct {
	cache  adapters.Cache
	opts   Options
	ledger *backend.Ledger
}

// New returns the adapter.
func New(cache adapters.Cache, opts Options) *Adapter {
	opts.HTTPOptions = opts.HTTPOptions.WithDefaults()
	return &Adapter{cache: cache, opts: opts, ledger: backend.OpenLedger(opts.LedgerPath)}
}

// Routes registers the adapter's paths.
func (a *Adapter) Routes(mux *http.ServeMux) {
	g := a.opts.Guard
	mux.Handle("GET /recipes/v1/ping", g.Wrap(adapters.Read, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})))
	mux.Handle("GET /recipes/v1/ledger", g.Wrap(adapters.Read, http.HandlerFunc(a.events)))
	mux.Handle("POST /recipes/v1/ledger", g.Wrap(adapters.Write, http.HandlerFunc(a.record)))
	mux.Handle("GET /recipes/v1/{space}/{key}", g.Wrap(adapters.Read, http.HandlerFunc(a.get)))
	mux.Handle("HEAD /recipes/v1/{space}/{key}", g.Wrap(adapters.Read, http.HandlerFunc(a.head)))
	mux.Handle("PUT /recipes/v1/{space}/{key}", g.Wrap(adapters.Write, http.HandlerFunc(a.put)))
	mux.Handle("DELETE /recipes/v1/{space}/{key}", g.Wrap(adapters.Write, http.HandlerFunc(a.delete)))
}

func (a *Adapter) ref(w http.ResponseWriter, r *http.Request) (messages.Ref, bool) {
	ns, err := backend.Space(r.PathValue("space")).Namespace()
	if err == nil {
		err = backend.ValidKey(r.PathValue("key"))
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return messages.Ref{}, false
	}
	return messages.Ref{Namespace: ns, Key: r.PathValue("key")}, true
}

func (a *Adapter) get(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer a.opts.Metrics.ObserveRequest("recipes", "get", start)
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	res, err := a.cache.Get(r.Context(), ref)
	if err != nil || !res.Found {
		a.opts.Metrics.Miss("recipes")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	a.opts.Metrics.Hit("recipes")
	defer res.Body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(res.Meta.Size, 10))
	n, err := adapters.SendBody(w, res.Body, res.Meta.Size)
	a.opts.Metrics.Downloaded(n)
	if err != nil {
		a.opts.Logger.Warn("recipes: response aborted", "ref", ref.String(), "sent", n, "err", err)
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
	w.Header().Set("Content-Length", strconv.FormatInt(res.Meta.Size, 10))
}

// writeAnswers is the recipes client's reading of each upload outcome: the
// CLI reports any non-2xx as "not cached" and carries on with the run's
// result, so plain HTTP statuses suffice.
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
	start := time.Now()
	defer a.opts.Metrics.ObserveRequest("recipes", "put", start)
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	res := adapters.Store(r.Context(), a.cache, ref, messages.Meta{BuildSystem: "recipes"}, adapters.Upload{
		Body: r.Body, Length: r.ContentLength, Max: a.opts.MaxArtifactSize,
	})
	a.opts.Metrics.Uploaded(res.Size)
	if res.Outcome == adapters.Internal || res.Outcome == adapters.Unavailable {
		a.opts.Logger.Error("recipes: store failed", "ref", ref.String(), "outcome", res.Outcome, "err", res.Err)
	}
	ans := writeAnswers.For(res)
	if res.Outcome == adapters.Stored {
		w.WriteHeader(ans.Status)
		return
	}
	http.Error(w, ans.Message, ans.Status)
}

func (a *Adapter) delete(w http.ResponseWriter, r *http.Request) {
	ref, ok := a.ref(w, r)
	if !ok {
		return
	}
	if err := a.cache.Delete(r.Context(), ref); err != nil {
		a.opts.Logger.Error("recipes: delete failed", "ref", ref.String(), "err", err)
		http.Error(w, "cannot delete entry", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// maxEvent bounds one ledger line.
const maxEvent = 64 << 10

func (a *Adapter) record(w http.ResponseWriter, r *http.Request) {
	var ev backend.Event
	dec := json.NewDecoder(io.LimitReader(r.Body, maxEvent))
	if err := dec.Decode(&ev); err != nil || ev.Kind == "" {
		if err == nil {
			err = errors.New("event without kind")
		}
		http.Error(w, "malformed ledger event: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := a.ledger.Append(ev); err != nil {
		a.opts.Logger.Error("recipes: ledger append failed", "err", err)
		http.Error(w, "cannot record event", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Adapter) events(w http.ResponseWriter, _ *http.Request) {
	evs, err := a.ledger.Events()
	if err != nil {
		a.opts.Logger.Error("recipes: ledger read failed", "err", err)
		http.Error(w, "cannot read ledger", http.StatusInternalServerError)
		return
	}
	if evs == nil {
		evs = []backend.Event{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(evs)
}
