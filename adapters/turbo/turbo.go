// Package turbo serves Turborepo's remote cache API, version 8, as turbo 2.x
// speaks it: artifacts under /v8/artifacts/{hash} (PUT, GET, HEAD), a batch
// query (POST /v8/artifacts), the caching status, analytics events, and CORS
// preflight. Artifacts are namespaced by the team the client names in its
// teamId or slug query parameter.
//
// Artifact bodies and their x-artifact-tag are opaque here: with signing on,
// turbo signs hash, team and body with a key the server never sees, so the
// tag must come back byte for byte as it was uploaded.
package turbo

import (
	"log/slog"
	"net/http"
	"unicode/utf8"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// Namespace holds artifacts of clients that name no team; a team's artifacts
// live in Namespace + "/" + team.
const Namespace = "turbo"

// buildSystem labels Turborepo artifacts and requests in metrics and stats.
const buildSystem = "turborepo"

// Attribute names under which Meta.Attrs keeps turbo's artifact headers.
const (
	attrDuration = "x-artifact-duration"
	attrTag      = "x-artifact-tag"
)

// maxKeyLen bounds hashes and team names: turbo's hashes are 16 hex digits,
// Vercel team ids about 30 characters.
const maxKeyLen = 128

// Options configure an Adapter. The auth layer behind Guard should answer
// with WriteAuthError so turbo can parse the failure; Metrics also receives
// the client's own analytics events.
type Options = adapters.HTTPOptions

// Adapter serves the Turborepo API over an adapters.Cache. It keeps no state
// of its own beyond its options.
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

// Routes registers the Turborepo endpoints on mux, all under /v8/artifacts,
// which no other adapter uses. The literal paths (status, events) take
// precedence over {hash} by ServeMux's most-specific-pattern rule.
func (a *Adapter) Routes(mux *http.ServeMux) {
	a.route(mux, "GET /v8/artifacts/status", adapters.Read, a.status)
	// Events report hits as well as misses, so a read-only token sends them.
	a.route(mux, "POST /v8/artifacts/events", adapters.Read, a.events)
	a.route(mux, "POST /v8/artifacts", adapters.Read, a.query)
	// A GET pattern also matches HEAD; a separate HEAD pattern would
	// conflict with "GET /v8/artifacts/status", so get dispatches HEAD.
	a.route(mux, "GET /v8/artifacts/{hash}", adapters.Read, a.get)
	a.route(mux, "PUT /v8/artifacts/{hash}", adapters.Write, a.put)
	// Preflight carries no decision and a browser sends it without
	// credentials, so it is the one route outside the guard.
	mux.Handle("OPTIONS /v8/artifacts", http.HandlerFunc(preflight))
	mux.Handle("OPTIONS /v8/artifacts/{path...}", http.HandlerFunc(preflight))
}

// route registers h behind the guard. Which origins may read the answers is
// the node's browser policy (adapters/browser), not the adapter's: no
// wildcard, an allow-list that is empty by default.
func (a *Adapter) route(mux *http.ServeMux, pattern string, access adapters.Access, h http.HandlerFunc) {
	mux.Handle(pattern, a.opts.Guard.Wrap(access, h))
}

// namespace is the team's namespace from the teamId or slug query parameter
// (turbo sends teamId for ids starting with "team_", slug otherwise), or the
// shared namespace when the client names no team. When both are present the
// teamId wins, as in Vercel's API, where teamId identifies and slug is only
// its human alias.
func namespace(r *http.Request) (string, bool) {
	q := r.URL.Query()
	team := q.Get("teamId")
	if team == "" {
		team = q.Get("slug")
	}
	if team == "" {
		return Namespace, true
	}
	if !validTeam(team) {
		return "", false
	}
	return Namespace + "/" + team, true
}

// validTeam accepts every team name a Turborepo client can send (TURBO_TEAM
// is free text: "acme.corp", "my team", unicode) except what would make the
// namespace ambiguous or unprintable in logs: '/', control characters,
// invalid UTF-8, and names longer than a key.
func validTeam(t string) bool {
	if t == "" || len(t) > maxKeyLen || !utf8.ValidString(t) {
		return false
	}
	for _, c := range t {
		if c == '/' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// ref names the artifact of the request's path hash within its team.
func ref(r *http.Request) (messages.Ref, string, bool) {
	hash := r.PathValue("hash")
	if !validName(hash) {
		return messages.Ref{}, "malformed artifact hash", false
	}
	ns, ok := namespace(r)
	if !ok {
		return messages.Ref{}, "malformed teamId or slug", false
	}
	return messages.Ref{Namespace: ns, Key: hash}, "", true
}

// validName accepts letters, digits, '-' and '_': turbo's hex hashes, team
// ids and slugs, and nothing that could mean something in a storage key.
func validName(k string) bool {
	if k == "" || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
