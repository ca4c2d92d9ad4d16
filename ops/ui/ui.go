// Package ui is the dashboard served at /ui/ on the API listener: an
// overview of the node (hit ratio over the last hour, traffic per build
// system, size, evictions, latency, upstreams) and a cache explorer. The
// page is rendered by the server and filled in by a small script that reads
// the same /api/v1 endpoints as any client, with the same auth: when the
// API asks for a token, the page asks the user for one, keeps it in
// sessionStorage and sends it as a Bearer header. Everything is embedded in
// the binary; nothing is fetched from elsewhere, so it works offline.
package ui

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed index.html
var indexHTML string

//go:embed static
var static embed.FS

var page = template.Must(template.New("index").Parse(indexHTML))

// Options describe the node the page is about.
type Options struct {
	// Version is shown in the header.
	Version string
	// Role is "edge" or "regional".
	Role string
}

// Routes mounts /ui/ and its assets. The page and assets hold no data, so
// they are served without auth; every figure comes from /api/v1, which
// checks the token.
func Routes(mux *http.ServeMux, o Options) {
	sub, _ := fs.Sub(static, "static")
	assets := http.StripPrefix("/ui/static/", http.FileServerFS(sub))
	mux.Handle("GET /ui/static/", noStore(assets))
	mux.Handle("GET /ui/{$}", noStore(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		page.Execute(w, o)
	})))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
}

// noStore keeps a browser from showing a dashboard of an older binary.
func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}
