package auth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
)

// jwksServer is a real JWKS endpoint on 127.0.0.1 whose document and status
// a test can change.
type jwksServer struct {
	*httptest.Server
	body   atomic.Pointer[[]byte]
	status atomic.Int64
	hits   atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{}
	s.serve(body, http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if code := int(s.status.Load()); code != http.StatusOK {
			http.Error(w, "jwks down", code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(body []byte, status int) {
	s.body.Store(&body)
	s.status.Store(int64(status))
}

func TestJWKSRefresh(t *testing.T) {
	first, second := authtest.New(t), authtest.New(t)
	srv := newJWKSServer(t, authtest.JWKS(t, first))
	a, logs := newAuth(t, config.AuthConfig{JWKSURL: srv.URL, KeyRefreshInterval: config.Duration(100 * time.Millisecond)})
	if !a.Enabled() {
		t.Fatal("a JWKS URL alone does not enable auth")
	}
	firstTok, secondTok := first.Token(t), second.Token(t)
	if !passes(a, firstTok) {
		t.Fatal("key from the first fetch not in force when New returns")
	}
	if passes(a, secondTok) {
		t.Fatal("key not yet published passes")
	}

	srv.serve(authtest.JWKS(t, first, second), http.StatusOK)
	eventually(t, 3*time.Second, "refresh picks up the new key", func() bool { return passes(a, secondTok) })

	// The endpoint fails: several refreshes later both keys still work.
	srv.serve(nil, http.StatusInternalServerError)
	hits := srv.hits.Load()
	eventually(t, 3*time.Second, "failing refreshes attempted", func() bool { return srv.hits.Load() >= hits+3 })
	if !passes(a, firstTok) || !passes(a, secondTok) {
		t.Fatal("a failing refresh dropped the last good keys")
	}
	if !strings.Contains(logs.String(), "jwks refresh failed") {
		t.Fatalf("failing refresh not logged: %s", logs.String())
	}

	// An empty set is treated as a failure too, not as "revoke everything".
	srv.serve([]byte(`{"keys":[]}`), http.StatusOK)
	hits = srv.hits.Load()
	eventually(t, 3*time.Second, "empty set fetched", func() bool { return srv.hits.Load() >= hits+2 })
	if !passes(a, firstTok) {
		t.Fatal("an empty JWKS dropped the last good keys")
	}

	// A good set without the first key withdraws it.
	srv.serve(authtest.JWKS(t, second), http.StatusOK)
	eventually(t, 3*time.Second, "key withdrawn from JWKS stops passing", func() bool { return !passes(a, firstTok) })
	if !passes(a, secondTok) {
		t.Fatal("remaining JWKS key refused")
	}
}

// A JWKS endpoint that is down when the node starts does not stop it from
// starting; the keys arrive once the endpoint answers.
func TestJWKSDownAtStart(t *testing.T) {
	keys := authtest.New(t)
	srv := newJWKSServer(t, nil)
	srv.serve(nil, http.StatusServiceUnavailable)
	a, _ := newAuth(t, config.AuthConfig{JWKSURL: srv.URL, KeyRefreshInterval: config.Duration(100 * time.Millisecond)})
	tok := keys.Token(t)
	if passes(a, tok) {
		t.Fatal("token passes with no keys loaded")
	}
	srv.serve(authtest.JWKS(t, keys), http.StatusOK)
	eventually(t, 3*time.Second, "keys loaded once JWKS answers", func() bool { return passes(a, tok) })
}

// Close stops the background refresh.
func TestCloseStopsRefresh(t *testing.T) {
	keys := authtest.New(t)
	srv := newJWKSServer(t, authtest.JWKS(t, keys))
	a, _ := newAuth(t, config.AuthConfig{JWKSURL: srv.URL, KeyRefreshInterval: config.Duration(50 * time.Millisecond)})
	eventually(t, 3*time.Second, "refreshing", func() bool { return srv.hits.Load() >= 3 })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	hits := srv.hits.Load()
	time.Sleep(300 * time.Millisecond)
	if srv.hits.Load() != hits {
		t.Fatalf("%d fetches after Close", srv.hits.Load()-hits)
	}
	if !passes(a, keys.Token(t)) {
		t.Fatal("keys dropped by Close")
	}
}
