package ops

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/metrics"
)

// API serves /api/v1 on the API port: the cache query API (read scope) and
// the admin API (admin scope, only when Admin is set). JSON shapes follow
// the spec's "Cache Query API" and "Admin API" sections.
type API struct {
	// Index is the local store.
	Index   Index
	Metrics *metrics.Set
	// Guard checks tokens (nil when auth is off).
	Guard adapters.Guard
	// Query serves /api/v1/artifacts and /api/v1/stats.
	Query bool
	// Admin, when set, serves /api/v1/admin; nil leaves those paths 404.
	Admin  Admin
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// History feeds /api/v1/stats/timeseries (nil: an empty series).
	History *History
	// Upstreams names the upstream tiers in priority order, so the
	// dashboard lists those never asked yet too.
	Upstreams []string
	// MaxSize is the local tier's size bound (nil: 0, unknown).
	MaxSize func() int64
	// P2P reports the P2P figures for /api/v1/stats (nil: P2P off).
	P2P func() any
	// P2PPeers lists the known peers for /api/v1/stats/detail (nil: P2P off).
	P2PPeers func() []string

	once  sync.Once
	ranks *rankings
	types *typeSizes
}

func (a *API) init() {
	a.once.Do(func() {
		if a.Now == nil {
			a.Now = time.Now
		}
		if a.Logger == nil {
			a.Logger = slog.New(slog.DiscardHandler)
		}
		a.ranks = newRankings(a.Index, a.Now)
		a.types = &typeSizes{idx: a.Index, now: a.Now}
	})
}

// Routes registers the enabled endpoints.
func (a *API) Routes(mux *http.ServeMux) {
	a.init()
	read := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, a.Guard.Wrap(adapters.Read, h)) }
	if a.Query {
		read("GET /api/v1/artifacts", a.list)
		read("GET /api/v1/artifacts/top", a.top)
		read("GET /api/v1/artifacts/search", a.search)
		read("GET /api/v1/artifacts/{hash}", a.artifact)
		read("GET /api/v1/stats", a.stats)
		read("GET /api/v1/stats/timeseries", a.timeseries)
		read("GET /api/v1/stats/detail", a.detail)
	}
	if a.Admin != nil {
		admin := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, a.Guard.Wrap(adapters.Admin, h)) }
		admin("POST /api/v1/admin/evict", a.evict)
		admin("POST /api/v1/admin/clear", a.clear)
		admin("POST /api/v1/admin/delete", a.delete)
		admin("GET /api/v1/admin/config", a.getConfig)
		admin("POST /api/v1/admin/config", a.setConfig)
	}
}

// Invalidate forgets cached listings and stats, so the next request sees
// the store as it is now (after an eviction or a clear).
func (a *API) Invalidate() {
	a.init()
	a.ranks.invalidate()
	a.types.invalidate()
}

// badRequest is a client mistake in a query parameter or body: 400 with
// its message.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// errorBody is every error answer of /api/v1.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// fail answers err: 400 for a bad request or a refused config key, 404 for
// errNotFound, 500 (logged, message kept generic) otherwise.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var br *badRequest
	var ke *KeyError
	switch {
	case errors.As(err, &br):
		writeJSON(w, http.StatusBadRequest, errorBody{"bad_request", br.msg})
	case errors.As(err, &ke):
		writeJSON(w, http.StatusBadRequest, errorBody{"bad_request", ke.Error()})
	case errors.Is(err, errNotFound):
		writeJSON(w, http.StatusNotFound, errorBody{"not_found", err.Error()})
	default:
		a.Logger.Error("api request failed", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{"internal", "internal error, see the node's log"})
	}
}

var errNotFound = errors.New("not found")

// intParam reads a non-negative integer query parameter, def when absent.
func intParam(r *http.Request, name string, def, max int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badf("%s=%q: want a whole number of 0 or more", name, s)
	}
	if n > max {
		return 0, badf("%s=%d: at most %d", name, n, max)
	}
	return n, nil
}
