// Package httpfront is the handler of a shared HTTP listener: adapters
// mount their route tables on it and unmount them when they stop, without
// knowing about each other. The listener actor owns the socket; each adapter
// actor owns its mount.
package httpfront

import (
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Routes is an adapter's route table.
type Routes interface{ Routes(*http.ServeMux) }

// Front routes requests to the mounted adapters. The mux is rebuilt on every
// mount and unmount (a handful of routes, at start and stop) and read with
// one atomic load per request.
type Front struct {
	mu      sync.Mutex // serialises Mount and Unmount; guards mounted
	mounted map[string]Routes
	mux     atomic.Pointer[http.ServeMux]
}

// New returns a front with nothing mounted (every request is a 404).
func New() *Front {
	f := &Front{mounted: map[string]Routes{}}
	f.mux.Store(http.NewServeMux())
	return f
}

// Mount adds (or replaces) the named adapter's routes.
func (f *Front) Mount(name string, r Routes) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mounted[name] = r
	f.rebuild()
}

// Unmount removes the named adapter's routes: its paths answer 404 again.
func (f *Front) Unmount(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mounted, name)
	f.rebuild()
}

// Mounted lists the mounted adapters, sorted.
func (f *Front) Mounted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.mounted))
	for n := range f.mounted {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (f *Front) rebuild() {
	mux := http.NewServeMux()
	for _, r := range f.mounted {
		r.Routes(mux)
	}
	f.mux.Store(mux)
}

// ServeHTTP routes to the mounted adapters; a refusal of a request with a
// body drains the body first (see MaxDrain). "//v8/artifacts/x" is routed as
// "/v8/artifacts/x": users who configure a base URL with a trailing slash
// make their clients send double slashes, and ServeMux would answer with a
// redirect that clients streaming an upload (turbo) cannot replay.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "//") {
		p := r.URL.Path
		for strings.Contains(p, "//") {
			p = strings.ReplaceAll(p, "//", "/")
		}
		r2 := *r
		u := *r.URL
		u.Path, u.RawPath = p, ""
		r2.URL = &u
		r = &r2
	}
	w, r = drainRefusals(w, r)
	f.mux.Load().ServeHTTP(w, r)
}
