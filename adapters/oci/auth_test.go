package oci

import (
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/internal/cachetest"
)

// The adapter behind the node's real JWT guard (as node.guard builds it).
func startWithAuth(t *testing.T) (*env, *authtest.Keys) {
	t.Helper()
	keys := authtest.New(t)
	authn, err := auth.New(keys.Config(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authn.Close() })
	scope := map[adapters.Access]auth.Scope{adapters.Read: auth.Read, adapters.Write: auth.Write, adapters.Admin: auth.Admin}
	guard := func(acc adapters.Access, h http.Handler) http.Handler {
		return authn.Require(scope[acc], h, auth.BasicChallenge(), auth.WithErrorWriter(func(w http.ResponseWriter, _ *http.Request, status int, err error) {
			WriteAuthError(w, status, err.Error())
		}))
	}
	cache := cachetest.New(t)
	a := New(cache, Options{HTTPOptions: adapters.HTTPOptions{Guard: guard}})
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, addr: srv.Listener.Addr().String(), cache: cache, a: a}, keys
}

func basic(user, pass string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestAuth(t *testing.T) {
	e, keys := startWithAuth(t)
	read := keys.Token(t, authtest.Scopes("cache:read"))
	write := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
	admin := keys.Token(t, authtest.Scopes("cache:read", "cache:write", "admin"))

	// No credentials: 401 with a Basic challenge (what docker-style
	// clients answer with their credentials), the spec's error, and the
	// API version header that tells them this is a registry.
	r := e.do("GET", "/v2/", nil).want(t, 401, codeUnauthorized)
	if ch := r.Header.Values("WWW-Authenticate"); len(ch) != 1 || !strings.HasPrefix(ch[0], "Basic realm=") {
		t.Fatalf("WWW-Authenticate %q, want one Basic challenge", ch)
	}
	if r.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatal("401 without Docker-Distribution-API-Version")
	}
	e.do("GET", "/v2/", nil, "Authorization: Bearer garbage").want(t, 401, codeUnauthorized)

	// The JWT as Bearer and as the Basic password.
	e.do("GET", "/v2/", nil, "Authorization: Bearer "+read).want(t, 200)
	e.do("GET", "/v2/", nil, basic("user", read)).want(t, 200)

	layer := []byte("layer")
	d := digest(layer)
	push := "/v2/app/blobs/uploads/?digest=" + d
	e.do("POST", push, layer).want(t, 401)
	e.do("POST", push, layer, "Authorization: Bearer "+read).want(t, 403, codeDenied)
	e.do("HEAD", "/v2/app/blobs/"+d, nil, "Authorization: Bearer "+read).want(t, 404)
	e.do("POST", push, layer, basic("ci", write)).want(t, 201)
	e.do("GET", "/v2/app/blobs/"+d, nil, basic("ci", read)).want(t, 200)
	e.do("GET", "/v2/app/blobs/"+d, nil).want(t, 401)

	// Uploads are the pusher's: a read token cannot open, see or cancel one.
	loc := e.do("POST", "/v2/app/blobs/uploads/", nil, "Authorization: Bearer "+write).want(t, 202).Header.Get("Location")
	e.do("GET", loc, nil, "Authorization: Bearer "+read).want(t, 403)
	e.do("DELETE", loc, nil, "Authorization: Bearer "+read).want(t, 403)
	e.do("DELETE", loc, nil, "Authorization: Bearer "+write).want(t, 204)

	// Deletes need more than a write token.
	e.do("DELETE", "/v2/app/blobs/"+d, nil, "Authorization: Bearer "+write).want(t, 403, codeDenied)
	e.do("DELETE", "/v2/app/blobs/"+d, nil, "Authorization: Bearer "+admin).want(t, 202)
}
