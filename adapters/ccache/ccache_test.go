package ccache

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/internal/adaptertest"
	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/messages"
)

// Paths as ccache 4.7.5 sends them for one key in each layout.
var layouts = map[string]string{
	"subdirs": "/ccache/01/4ft174j5hsp8j8q1k7nbgcquvkhe6s2mo",
	"flat":    "/ccache/014ft174j5hsp8j8q1k7nbgcquvkhe6s2mo",
	"bazel":   "/ccache/ac/" + strings.Repeat("0123456789abcdef0123456789abcdef01234567", 2)[:64],
}

func serve(t *testing.T, opts Options) (*httptest.Server, adapters.Cache) {
	t.Helper()
	cache := cachetest.New(t)
	mux := http.NewServeMux()
	New(cache, opts).Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, cache
}

func do(t *testing.T, method, url string, body []byte, authz string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "ccache/4.7.5")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// Every layout: a miss is 404, PUT stores, GET and HEAD find it, DELETE
// removes it, and the entry lives in the ccache namespace.
func TestLayoutsRoundTrip(t *testing.T) {
	srv, cache := serve(t, Options{})
	for name, path := range layouts {
		t.Run(name, func(t *testing.T) {
			body := adaptertest.RandomBytes(t, 3000)
			if resp, _ := do(t, "GET", srv.URL+path, nil, ""); resp.StatusCode != 404 {
				t.Fatalf("GET before PUT: %d, want 404", resp.StatusCode)
			}
			if resp, _ := do(t, "HEAD", srv.URL+path, nil, ""); resp.StatusCode != 404 {
				t.Fatalf("HEAD before PUT: %d, want 404", resp.StatusCode)
			}
			if resp, b := do(t, "PUT", srv.URL+path, body, ""); resp.StatusCode != 200 {
				t.Fatalf("PUT: %d %s", resp.StatusCode, b)
			}
			resp, got := do(t, "GET", srv.URL+path, nil, "")
			if resp.StatusCode != 200 || !bytes.Equal(got, body) {
				t.Fatalf("GET after PUT: %d, %d bytes", resp.StatusCode, len(got))
			}
			resp, _ = do(t, "HEAD", srv.URL+path, nil, "")
			if resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) {
				t.Fatalf("HEAD after PUT: %d, length %d", resp.StatusCode, resp.ContentLength)
			}
			key := strings.TrimPrefix(path, Prefix)
			st, _ := cache.Stat(t.Context(), messages.Ref{Namespace: Namespace, Key: key})
			if !st.Found || st.Meta.BuildSystem != buildSystem {
				t.Fatalf("entry %s/%s: found=%v build system %q", Namespace, key, st.Found, st.Meta.BuildSystem)
			}
			if resp, _ := do(t, "DELETE", srv.URL+path, nil, ""); resp.StatusCode != 204 {
				t.Fatalf("DELETE: %d, want 204", resp.StatusCode)
			}
			if resp, _ := do(t, "GET", srv.URL+path, nil, ""); resp.StatusCode != 404 {
				t.Fatalf("GET after DELETE: %d, want 404", resp.StatusCode)
			}
			if resp, _ := do(t, "DELETE", srv.URL+path, nil, ""); resp.StatusCode != 404 {
				t.Fatalf("DELETE of a missing entry: %d, want 404", resp.StatusCode)
			}
		})
	}
}

// Two layouts of the same digest are two keys, and a client prefix is a
// partition of its own.
func TestKeysArePaths(t *testing.T) {
	srv, _ := serve(t, Options{})
	if resp, _ := do(t, "PUT", srv.URL+layouts["subdirs"], []byte("a"), ""); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	for _, p := range []string{layouts["flat"], "/ccache/team-b/01/4ft174j5hsp8j8q1k7nbgcquvkhe6s2mo"} {
		if resp, _ := do(t, "GET", srv.URL+p, nil, ""); resp.StatusCode != 404 {
			t.Fatalf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestMalformedKeysRefused(t *testing.T) {
	srv, _ := serve(t, Options{})
	for _, p := range []string{"/ccache/a%00b", "/ccache/a/%2e%2e/b", "/ccache/a%20b", "/ccache/" + strings.Repeat("a", maxKeyLen+1)} {
		if resp, _ := do(t, "PUT", srv.URL+p, []byte("x"), ""); resp.StatusCode != 400 {
			t.Errorf("PUT %s: %d, want 400", p, resp.StatusCode)
		}
	}
}

// Every upload outcome of the shared write path answers with writeAnswers,
// and no refusal stores anything.
func TestUploadOutcomes(t *testing.T) {
	adaptertest.Outcomes{
		Table: writeAnswers,
		Cache: cachetest.New(t),
		Serve: func(c adapters.Cache, max int64) http.Handler {
			mux := http.NewServeMux()
			New(c, Options{MaxArtifactSize: max}).Routes(mux)
			return mux
		},
		Path: func(i int) string { return fmt.Sprintf("/ccache/%02x/4ft174j5hsp8j8q1k7nbgcquvkhe6s2m", i) },
	}.Run(t)
}

// Behind the node's guard: the token as the Basic password (ccache's
// http://user:TOKEN@host form) and as a Bearer token (|bearer-token=) both
// read and write; a read-only token reads but cannot write; no token gets
// 401 and stores nothing.
func TestAuth(t *testing.T) {
	keys := authtest.New(t)
	authn, err := auth.New(keys.Config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authn.Close() })
	scopes := map[adapters.Access]auth.Scope{adapters.Read: auth.Read, adapters.Write: auth.Write}
	guard := adapters.Guard(func(acc adapters.Access, h http.Handler) http.Handler {
		return authn.Require(scopes[acc], h, auth.BasicChallenge())
	})
	srv, _ := serve(t, Options{Guard: guard})
	rw := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
	ro := keys.Token(t, authtest.Scopes("cache:read"))
	basic := func(tok string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte("ccache:"+tok))
	}
	url := srv.URL + layouts["subdirs"]
	if resp, _ := do(t, "PUT", url, []byte("x"), ""); resp.StatusCode != 401 {
		t.Fatalf("anonymous PUT: %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(t, "PUT", url, []byte("x"), basic(ro)); resp.StatusCode != 403 {
		t.Fatalf("read-only PUT: %d, want 403", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", url, nil, basic(ro)); resp.StatusCode != 404 {
		t.Fatalf("refused PUTs stored something: GET %d, want 404", resp.StatusCode)
	}
	if resp, _ := do(t, "PUT", url, []byte("basic"), basic(rw)); resp.StatusCode != 200 {
		t.Fatalf("Basic PUT: %d", resp.StatusCode)
	}
	for name, authz := range map[string]string{"basic ro": basic(ro), "bearer ro": "Bearer " + ro, "bearer rw": "Bearer " + rw} {
		if resp, b := do(t, "GET", url, nil, authz); resp.StatusCode != 200 || string(b) != "basic" {
			t.Fatalf("%s GET: %d %q", name, resp.StatusCode, b)
		}
	}
	if resp, _ := do(t, "GET", url, nil, ""); resp.StatusCode != 401 {
		t.Fatalf("anonymous GET: %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(t, "DELETE", url, nil, "Bearer "+ro); resp.StatusCode != 403 {
		t.Fatalf("read-only DELETE: %d, want 403", resp.StatusCode)
	}
	if resp, _ := do(t, "PUT", url, []byte("bearer"), "Bearer "+rw); resp.StatusCode != 200 {
		t.Fatalf("Bearer PUT: %d", resp.StatusCode)
	}
}
