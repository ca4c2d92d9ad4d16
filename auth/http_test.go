package auth_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
)

// cacheServer is a real HTTP server on 127.0.0.1 whose handler counts the
// requests that reached it, so a test sees that a refused write stored
// nothing.
type cacheServer struct {
	*httptest.Server
	reached atomic.Int64
}

func newCacheServer(t *testing.T, a *auth.Authenticator, scopeFor func(*http.Request) auth.Scope, opts ...auth.HTTPOption) *cacheServer {
	t.Helper()
	s := &cacheServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reached.Add(1)
		p, ok := auth.FromContext(r.Context())
		if !ok {
			http.Error(w, "no principal in context", http.StatusInternalServerError)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": p.Subject, "project": p.ProjectID, "instance": p.InstanceID, "anonymous": p.Anonymous})
	})
	s.Server = httptest.NewServer(a.HTTP(scopeFor, h, opts...))
	t.Cleanup(s.Close)
	return s
}

func (s *cacheServer) do(t *testing.T, method, token string, basic bool) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+"/cache/abc", strings.NewReader("artifact bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		if basic {
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("gradle:"+token)))
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestHTTPMatrix(t *testing.T) {
	keys := authtest.New(t)
	sources := map[string]config.AuthConfig{
		"public_keys_dir": keys.Config(),
		"public_key_file": {PublicKeyFile: keys.File(), Leeway: config.Duration(5e9)},
	}
	for srcName, cfg := range sources {
		a, _ := newAuth(t, cfg)
		srv := newCacheServer(t, a, auth.ByHTTPMethod, auth.BasicChallenge())
		for _, need := range []struct {
			scope  string
			method string
		}{{"cache:read", http.MethodGet}, {"cache:write", http.MethodPut}} {
			for _, c := range keys.Matrix(t, need.scope) {
				for _, basic := range []bool{false, true} {
					scheme := map[bool]string{false: "bearer", true: "basic"}[basic]
					t.Run(srcName+"/"+need.scope+"/"+c.Name+"/"+scheme, func(t *testing.T) {
						before := srv.reached.Load()
						resp := srv.do(t, need.method, c.Token, basic)
						reached := srv.reached.Load() != before
						checkHTTP(t, resp, c.Want, reached)
					})
				}
			}
		}
	}
}

func checkHTTP(t *testing.T, resp *http.Response, want authtest.Want, reached bool) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	switch want {
	case authtest.Allowed:
		if resp.StatusCode != http.StatusOK || !reached {
			t.Fatalf("status %d reached=%v, want 200 through the handler; body %q", resp.StatusCode, reached, body)
		}
	case authtest.Unauthenticated:
		if resp.StatusCode != http.StatusUnauthorized || reached {
			t.Fatalf("status %d reached=%v, want 401 before the handler; body %q", resp.StatusCode, reached, body)
		}
		challenges := strings.Join(resp.Header.Values("WWW-Authenticate"), "\n")
		if !strings.Contains(challenges, `Bearer realm="fabrik"`) || !strings.Contains(challenges, `Basic realm="fabrik"`) {
			t.Fatalf("WWW-Authenticate %q lacks the Bearer and Basic challenges", challenges)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Fatalf("401 Content-Type %q, want text/plain (Nx requires it)", ct)
		}
	case authtest.Forbidden:
		if resp.StatusCode != http.StatusForbidden || reached {
			t.Fatalf("status %d reached=%v, want 403 before the handler; body %q", resp.StatusCode, reached, body)
		}
	}
}

func TestHTTPAdminScope(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	srv := newCacheServer(t, a, func(*http.Request) auth.Scope { return auth.Admin })
	for _, c := range keys.Matrix(t, "admin") {
		t.Run(c.Name, func(t *testing.T) {
			before := srv.reached.Load()
			resp := srv.do(t, http.MethodPost, c.Token, false)
			reached := srv.reached.Load() != before
			want := map[authtest.Want]int{authtest.Allowed: 200, authtest.Unauthenticated: 401, authtest.Forbidden: 403}[c.Want]
			if resp.StatusCode != want || reached != (c.Want == authtest.Allowed) {
				t.Fatalf("status %d reached=%v, want %d", resp.StatusCode, reached, want)
			}
		})
	}
	// admin grants reads and writes too: one operator token, not three.
	readWrite := newCacheServer(t, a, auth.ByHTTPMethod)
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		if resp := readWrite.do(t, m, keys.Token(t, authtest.Scopes("admin")), false); resp.StatusCode != http.StatusOK {
			t.Fatalf("admin token %s: status %d, want 200", m, resp.StatusCode)
		}
	}
}

func TestHTTPPrincipalInContext(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	srv := newCacheServer(t, a, auth.ByHTTPMethod)
	tok := keys.Token(t, authtest.Subject("customer_123"), authtest.Project("proj_456"), authtest.Instance("fabrik_regional_us-east"))
	resp := srv.do(t, http.MethodGet, tok, false)
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got["sub"] != "customer_123" || got["project"] != "proj_456" || got["instance"] != "fabrik_regional_us-east" || got["anonymous"] != false {
		t.Fatalf("principal %v", got)
	}
}

func TestHTTPJSONErrorBody(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	srv := newCacheServer(t, a, auth.ByHTTPMethod, auth.WithErrorWriter(auth.JSONError))
	for _, c := range []struct {
		token string
		code  string
		want  int
	}{
		{keys.Token(t, authtest.Scopes("cache:read")), "forbidden", http.StatusForbidden},
		{"", "unauthorized", http.StatusUnauthorized},
	} {
		resp := srv.do(t, http.MethodPut, c.token, false)
		var body struct {
			Error struct{ Code, Message string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("body is not JSON: %v", err)
		}
		if resp.StatusCode != c.want || body.Error.Code != c.code || body.Error.Message == "" || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d body %+v content-type %q, want %d %q", resp.StatusCode, body, resp.Header.Get("Content-Type"), c.want, c.code)
		}
	}
}

func TestHTTPPreflightIsPublic(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	srv := newCacheServer(t, a, auth.ByHTTPMethod)
	if resp := srv.do(t, http.MethodOptions, "", false); resp.StatusCode != http.StatusOK {
		t.Fatalf("OPTIONS without a token: %d, want 200", resp.StatusCode)
	}
}

func TestHTTPDisabledLetsEverythingThrough(t *testing.T) {
	keys := authtest.New(t)
	cfg := keys.Config()
	cfg.Required = boolPtr(false)
	a, logs := newAuth(t, cfg)
	if a.Enabled() {
		t.Fatal("Enabled() with required = false")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "DISABLED") {
		t.Fatalf("disabling auth was not logged loudly: %q", logs.String())
	}
	srv := newCacheServer(t, a, auth.ByHTTPMethod)
	for _, tok := range []string{"", "garbage", keys.Token(t, authtest.ExpiresIn(-time.Hour))} {
		resp := srv.do(t, http.MethodPut, tok, false)
		var got map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&got)
		if resp.StatusCode != http.StatusOK || got["anonymous"] != true {
			t.Fatalf("token %q with auth off: %d %v, want 200 anonymous", tok, resp.StatusCode, got)
		}
	}
	// A nil authenticator is auth off too, so adapters built without one work.
	var none *auth.Authenticator
	if resp := newCacheServer(t, none, auth.ByHTTPMethod).do(t, http.MethodPut, "", false); resp.StatusCode != http.StatusOK {
		t.Fatalf("nil authenticator: %d", resp.StatusCode)
	}
}
