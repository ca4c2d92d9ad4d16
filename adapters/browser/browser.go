// Package browser decides what a web page may do to a node. Build tools
// never send an Origin header and always name the node by the address they
// were configured with, so these rules cost them nothing; they exist because
// a developer's edge listens on loopback, where any page the developer opens
// can reach it:
//
//   - Host check (DNS rebinding): a loopback listener answers only requests
//     whose Host is a loopback name or address (localhost, *.localhost,
//     127.0.0.0/8, ::1) or a configured name. A page on evil.example that
//     rebinds its name to 127.0.0.1 sends Host: evil.example and is refused.
//   - CORS: no wildcard. Access-Control-Allow-Origin is sent only to origins
//     on the allow-list (empty by default), and a state-changing request
//     that carries any other Origin is refused before it reaches an adapter.
package browser

import (
	"net"
	"net/http"
	"slices"
	"strings"
)

// Policy is one listener's browser rules.
type Policy struct {
	// CheckHost turns the Host check on (loopback listeners).
	CheckHost bool
	// AllowedHosts are extra Host names accepted by the check (without port).
	AllowedHosts []string
	// AllowedOrigins may make cross-origin requests ("https://app.example").
	AllowedOrigins []string
}

// Wrap applies the policy to h.
func (p Policy) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.CheckHost && !p.hostAllowed(r.Host) {
			http.Error(w, "Host "+r.Host+" is not allowed on this listener (DNS rebinding protection): add it to runtime.allowed_hosts", http.StatusForbidden)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			if slices.Contains(p.AllowedOrigins, origin) {
				w.Header().Set("Access-Control-Allow-Origin", origin)
				w.Header().Add("Vary", "Origin")
			} else if !safeMethod(r.Method) {
				http.Error(w, "cross-origin request from "+origin+" refused: add it to runtime.cors_allowed_origins", http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// safeMethod: methods a browser page can already send without CORS and
// that change nothing here. Their answers are unreadable to the page
// without Access-Control-Allow-Origin; preflights carry no decision.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func (p Policy) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, a := range p.AllowedHosts {
		if strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}
