package auth_test

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
)

func TestNewConfigErrors(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]config.AuthConfig{
		"required without keys": {Required: boolPtr(true)},
		"missing key file":      {PublicKeyFile: filepath.Join(t.TempDir(), "absent.pem")},
		"key file not a key":    {PublicKeyFile: garbage},
		"missing key dir":       {PublicKeysDir: filepath.Join(t.TempDir(), "absent")},
	} {
		if a, err := auth.New(cfg, quiet); err == nil {
			a.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
	// No key source and nothing said: auth is off (an edge on a laptop).
	a, err := auth.New(config.AuthConfig{}, quiet)
	if err != nil || a.Enabled() {
		t.Fatalf("empty [auth]: enabled=%v err=%v, want off", a.Enabled(), err)
	}
}

func TestPolicy(t *testing.T) {
	keys := authtest.New(t)
	cfg := keys.Config()
	cfg.Issuer, cfg.Audience, cfg.Leeway = "https://tuist.dev", "fabrik", config.Duration(10*time.Second)
	a, _ := newAuth(t, cfg)
	good := []authtest.Option{authtest.Issuer("https://tuist.dev"), authtest.Audience("fabrik")}
	cases := []struct {
		name string
		opts []authtest.Option
		want error
	}{
		{"issuer and audience match", nil, nil},
		{"wrong issuer", []authtest.Option{authtest.Issuer("https://evil.example")}, jwt.ErrTokenInvalidIssuer},
		{"wrong audience", []authtest.Option{authtest.Audience("other")}, jwt.ErrTokenInvalidAudience},
		{"expired within leeway", []authtest.Option{authtest.ExpiresIn(-3 * time.Second)}, nil},
		{"expired beyond leeway", []authtest.Option{authtest.ExpiresIn(-30 * time.Second)}, jwt.ErrTokenExpired},
		{"nbf within leeway", []authtest.Option{authtest.NotBefore(3 * time.Second)}, nil},
		{"nbf beyond leeway", []authtest.Option{authtest.NotBefore(time.Minute)}, jwt.ErrTokenNotValidYet},
		{"iat in the future", []authtest.Option{authtest.IssuedAt(time.Hour)}, jwt.ErrTokenUsedBeforeIssued},
		{"no exp", []authtest.Option{authtest.NoExpiry()}, jwt.ErrTokenRequiredClaimMissing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := a.Authenticate(keys.Token(t, append(append([]authtest.Option{}, good...), c.opts...)...), auth.Read)
			if c.want == nil && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if c.want != nil && (!errors.Is(err, c.want) || !errors.Is(err, auth.ErrInvalidToken)) {
				t.Fatalf("err %v, want %v wrapped in ErrInvalidToken", err, c.want)
			}
		})
	}
}

func TestPermissionsClaimForms(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	p, err := a.Authenticate(keys.Token(t, authtest.Claim("permissions", "cache:read cache:write")), auth.Write)
	if err != nil || !p.Has(auth.Read) || p.Has(auth.Admin) {
		t.Fatalf("space-separated permissions: %+v %v", p, err)
	}
	if _, err := a.Authenticate(keys.Token(t, authtest.Claim("permissions", 42)), auth.Read); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("numeric permissions: %v, want invalid", err)
	}
	if _, err := a.Authenticate(keys.Token(t, authtest.Scopes("cache:read")), auth.Write); !errors.Is(err, auth.ErrForbidden) || auth.IsUnauthenticated(err) {
		t.Fatalf("read-only token writing: %v, want ErrForbidden", err)
	}
}

func TestReload(t *testing.T) {
	first, second := authtest.New(t), authtest.New(t)
	a, _ := newAuth(t, first.Config())
	firstTok, secondTok := first.Token(t), second.Token(t)

	// A reload that cannot load its keys changes nothing.
	if err := a.Reload(config.AuthConfig{PublicKeyFile: filepath.Join(t.TempDir(), "absent.pem")}); err == nil {
		t.Fatal("reload with a missing key file succeeded")
	}
	if !passes(a, firstTok) {
		t.Fatal("failed reload dropped the keys in force")
	}

	if err := a.Reload(second.Config()); err != nil {
		t.Fatal(err)
	}
	if passes(a, firstTok) || !passes(a, secondTok) {
		t.Fatal("reload did not switch key sources")
	}

	off := second.Config()
	off.Required = boolPtr(false)
	if err := a.Reload(off); err != nil || a.Enabled() {
		t.Fatalf("reload to required=false: enabled=%v err=%v", a.Enabled(), err)
	}
	if p, err := a.Authenticate("", auth.Admin); err != nil || !p.Anonymous {
		t.Fatalf("auth off: %+v %v", p, err)
	}
}

func TestObserverSeesEveryOutcome(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	var mu sync.Mutex
	counts := map[string]int{}
	a.Observe(func(need auth.Scope, p auth.Principal, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			counts["ok"]++
		case errors.Is(err, auth.ErrNoToken):
			counts["no_token"]++
		case errors.Is(err, auth.ErrInvalidToken):
			counts["invalid"]++
		case errors.Is(err, auth.ErrForbidden):
			counts["forbidden"]++
		}
	})
	for _, c := range keys.Matrix(t, "cache:write") {
		_, _ = a.Authenticate(c.Token, auth.Write)
	}
	_, _ = a.Authenticate("", auth.Public)
	got := map[string]int{"ok": 1, "no_token": 1, "invalid": 9, "forbidden": 2}
	mu.Lock()
	defer mu.Unlock()
	for k, v := range got {
		if counts[k] != v {
			t.Fatalf("observer counts %v, want %v", counts, got)
		}
	}
}

func TestHTTPToken(t *testing.T) {
	keys := authtest.New(t)
	a, _ := newAuth(t, keys.Config())
	srv := newCacheServer(t, a, auth.ByHTTPMethod)
	tok := keys.Token(t)
	for name, header := range map[string]string{
		"lowercase bearer":         "bearer " + tok,
		"basic, token as user":     "Basic " + b64(tok+":"),
		"basic, token as password": "Basic " + b64("anything:"+tok),
	} {
		req, _ := newRequest(srv.URL, header)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	if !strings.HasPrefix(keys.Token(t), "eyJ") {
		t.Fatal("authtest token is not a compact JWT")
	}
}
