// Package nx serves Nx's self-hosted remote cache API (the OpenAPI spec Nx
// publishes for Nx 20.8 and later): PUT and GET /v1/cache/{hash}.
//
// Nx's client stops the user's whole run on any status it does not expect
// (it calls the server "misconfigured"). The only answers it takes calmly are
// 200 and 404 on reads, and 200, 409 and 403 on writes. So every ordinary
// condition on a write that is not a success (cache full, artifact too large,
// a local storage failure) is answered 403, the status Nx documents as "the
// server does not allow storing this", which makes Nx carry on without it.
package nx

import (
	"log/slog"
	"net/http"
	"sync"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// Namespace holds every Nx artifact; Nx has no notion of teams or tenants.
const Namespace = "nx"

// buildSystem labels Nx artifacts and requests in metrics and stats.
const buildSystem = "nx"

// maxKeyLen bounds a hash: Nx task hashes are decimal u64 strings (20 digits
// at most); the bound only leaves room for future formats.
const maxKeyLen = 128

// Options configure an Adapter. The auth layer behind Guard should answer
// with WriteAuthError so Nx shows the message to the user.
type Options = adapters.HTTPOptions

// Adapter serves the Nx API over an adapters.Cache. It holds no artifact
// state of its own; uploading tracks hashes being received right now so two
// concurrent uploads of one hash cannot both store (Nx never overwrites),
// and so a second upload waits for the first instead of being told a record
// exists that the first may still fail to store.
type Adapter struct {
	cache adapters.Cache
	opts  Options
	log   *slog.Logger

	// uploading holds the refs whose body is being received by this
	// adapter; the channel is closed when that upload has finished.
	uploading sync.Map // messages.Ref -> chan struct{}
}

// New returns an Adapter storing into cache.
func New(cache adapters.Cache, opts Options) *Adapter {
	opts = opts.WithDefaults()
	return &Adapter{cache: cache, opts: opts, log: opts.Logger.With("adapter", buildSystem)}
}

// Routes registers the Nx endpoints on mux. The paths sit under /v1/cache/,
// which no other adapter uses, so several adapters can share one mux.
func (a *Adapter) Routes(mux *http.ServeMux) {
	mux.Handle("GET /v1/cache/{hash}", a.opts.Guard.Wrap(adapters.Read, http.HandlerFunc(a.get)))
	mux.Handle("PUT /v1/cache/{hash}", a.opts.Guard.Wrap(adapters.Write, http.HandlerFunc(a.put)))
}

// WriteAuthError answers an authentication (401) or authorization (403)
// failure the way Nx expects: Nx only shows the message of a 401 when its
// Content-Type is exactly text/plain, and treats any other 401 as a
// misconfigured server.
func WriteAuthError(w http.ResponseWriter, status int, msg string) {
	writeText(w, status, msg)
}

func writeText(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

// ref turns the path's hash into a Ref, or reports why it is malformed.
func ref(r *http.Request) (messages.Ref, bool) {
	hash := r.PathValue("hash")
	if !validKey(hash) {
		return messages.Ref{}, false
	}
	return messages.Ref{Namespace: Namespace, Key: hash}, true
}

// validKey accepts letters, digits, '-' and '_': enough for every hash Nx
// produces and nothing that could mean something in a path or a storage key.
func validKey(k string) bool {
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
