package browser

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPolicy(t *testing.T) {
	reached := 0
	h := Policy{CheckHost: true, AllowedHosts: []string{"cache.internal"}, AllowedOrigins: []string{"https://app.example"}}.
		Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	cases := []struct {
		method, host, origin string
		want                 int
		acao                 string
	}{
		{"PUT", "127.0.0.1:5071", "", 200, ""},
		{"PUT", "localhost:5071", "", 200, ""},
		{"PUT", "[::1]:5071", "", 200, ""},
		{"GET", "bucket.localhost:5073", "", 200, ""},
		{"PUT", "cache.internal:5071", "", 200, ""},
		{"PUT", "evil.example:5071", "", 403, ""}, // DNS rebinding
		{"GET", "evil.example", "", 403, ""},
		{"PUT", "127.0.0.1:5071", "https://evil.example", 403, ""},
		{"POST", "127.0.0.1:5071", "null", 403, ""},
		{"GET", "127.0.0.1:5071", "https://evil.example", 200, ""}, // unreadable: no ACAO
		{"PUT", "127.0.0.1:5071", "https://app.example", 200, "https://app.example"},
	}
	for _, c := range cases {
		before := reached
		r := httptest.NewRequest(c.method, "http://x/cache/k", nil)
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want || w.Header().Get("Access-Control-Allow-Origin") != c.acao {
			t.Errorf("%s Host %s Origin %q: %d ACAO %q, want %d %q", c.method, c.host, c.origin, w.Code, w.Header().Get("Access-Control-Allow-Origin"), c.want, c.acao)
		}
		if (reached > before) != (c.want == 200) {
			t.Errorf("%s Host %s Origin %q: handler reached=%v", c.method, c.host, c.origin, reached > before)
		}
	}
	// Without the Host check (a listener on a routable address), any Host.
	open := Policy{}.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest("PUT", "http://regional.example/x", nil)
	w := httptest.NewRecorder()
	open.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("no host check: %d", w.Code)
	}
}
