// Package auth authenticates requests with RS256 JWTs issued by Tuist and
// authorizes them by the permissions claim. One Authenticator serves every
// protocol: HTTP middleware (Bearer, or Basic with the token as password),
// gRPC interceptors (authorization metadata), and on the client side a
// TokenSource that presents this node's own machine token to its upstreams.
//
// Validation never does I/O. Keys come from public_key_file,
// public_keys_dir (polled, so rotation needs no restart) and a JWKS URL
// refreshed in the background; they are swapped in atomically.
package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuist/fabrik-node/config"
)

// filePollInterval is how often key files are rescanned: "within a few
// seconds" of an operator adding or removing a key. A shorter
// key_refresh_interval shortens it too.
const filePollInterval = 2 * time.Second

// jwksStartTimeout bounds the first JWKS fetch, which New waits for so the
// node does not start refusing every token while keys are on their way.
const jwksStartTimeout = 5 * time.Second

// Observer is told the outcome of every check that needed a token, for
// metrics: err is nil or wraps ErrNoToken, ErrInvalidToken or ErrForbidden.
type Observer func(need Scope, p Principal, err error)

// Authenticator is the node's one authentication mechanism. A nil
// *Authenticator is valid and behaves as auth disabled, so adapters built
// without one (tests, tools) need no special case.
type Authenticator struct {
	logger    *slog.Logger
	validator *Validator
	tokens    *TokenSource
	enabled   atomic.Bool
	observer  atomic.Pointer[Observer]

	mu      sync.Mutex // serialises Reload and Close; guards running
	running *keySources
}

// keySources is one generation of background key loading.
type keySources struct {
	cfg   config.AuthConfig
	store *keyStore
	files *keyFiles
	jwks  *jwksSource
	// jwksHealthy: the last fetch worked, so the next one waits a full
	// interval rather than the short retry delay.
	jwksHealthy bool
	cancel      context.CancelFunc
	done        sync.WaitGroup
}

// New builds the authenticator from [auth]. It loads the key files and makes
// a first JWKS fetch before returning, so the node starts with its keys in
// force; a key file that cannot be read is an error, an unreachable JWKS URL
// is logged and retried in the background.
func New(cfg config.AuthConfig, logger *slog.Logger) (*Authenticator, error) {
	if logger == nil {
		logger = slog.Default()
	}
	a := &Authenticator{
		logger:    logger,
		validator: NewValidator(policyOf(cfg)),
		tokens:    NewTokenSource(cfg, logger),
	}
	if err := a.Reload(cfg); err != nil {
		return nil, err
	}
	return a, nil
}

// Enabled reports whether requests are checked.
func (a *Authenticator) Enabled() bool { return a != nil && a.enabled.Load() }

// Tokens is this node's own token, for its clients to upstreams.
func (a *Authenticator) Tokens() *TokenSource {
	if a == nil {
		return nil
	}
	return a.tokens
}

// Validator is the underlying token validator (for diagnostics such as the
// kids in force).
func (a *Authenticator) Validator() *Validator {
	if a == nil {
		return nil
	}
	return a.validator
}

// Observe installs fn to be called after every check that needed a token.
func (a *Authenticator) Observe(fn Observer) {
	if a != nil {
		a.observer.Store(&fn)
	}
}

// Authenticate checks token for a request that needs scope need. With auth
// disabled it returns the anonymous principal holding every scope; for a
// Public endpoint it returns an anonymous principal holding none, without
// looking at the token.
func (a *Authenticator) Authenticate(token string, need Scope) (Principal, error) {
	if !a.Enabled() {
		return anonymous, nil
	}
	if need == Public {
		return publicPrincipal, nil
	}
	p, err := a.validator.Validate(token)
	if err == nil && !p.Has(need) {
		err = fmt.Errorf("%w: token lacks the %s permission", ErrForbidden, need)
	}
	if obs := a.observer.Load(); obs != nil {
		(*obs)(need, p, err)
	}
	return p, err
}

// Reload applies a new [auth] section: required, issuer, audience, leeway,
// the key sources and the node's own token. The new key sources are loaded
// completely before they replace the old ones; on error nothing changes.
func (a *Authenticator) Reload(cfg config.AuthConfig) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	enabled := requiredOf(cfg)
	if enabled && !hasKeySource(cfg) {
		return fmt.Errorf("auth.required is true but no key source is configured (public_key_file, public_keys_dir or jwks_url)")
	}
	var next *keySources
	if enabled {
		var err error
		if next, err = a.loadSources(cfg); err != nil {
			return err
		}
	}
	if a.running != nil {
		a.running.stop()
		a.running = nil
	}
	a.validator.SetPolicy(policyOf(cfg))
	if next != nil {
		next.store.activate()
		next.start()
		a.running = next
	} else {
		a.validator.setKeys(&keySet{})
	}
	a.tokens.configure(cfg)
	a.enabled.Store(enabled)
	if enabled {
		a.logger.Info("auth: enabled", "public_key_file", cfg.PublicKeyFile, "public_keys_dir", cfg.PublicKeysDir,
			"jwks_url", cfg.JWKSURL, "kids", a.validator.KeyIDs())
	} else {
		a.logger.Warn("auth: DISABLED, every request is accepted without a token; set [auth] keys or auth.required = true to enable")
	}
	return nil
}

// Close stops background key loading. The keys last loaded stay in force.
func (a *Authenticator) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running != nil {
		a.running.stop()
		a.running = nil
	}
	return nil
}

// loadSources builds and loads a new generation of key sources without
// putting it in force. JWKS keys of the running generation are carried over
// when the URL is unchanged, so a reload during a JWKS outage keeps them.
func (a *Authenticator) loadSources(cfg config.AuthConfig) (*keySources, error) {
	s := &keySources{cfg: cfg, store: newKeyStore(a.validator.setKeys)}
	if cfg.PublicKeyFile != "" || cfg.PublicKeysDir != "" {
		s.files = newKeyFiles(cfg.PublicKeyFile, cfg.PublicKeysDir, s.store, a.logger)
		if err := s.files.load(); err != nil {
			return nil, err
		}
	}
	if cfg.JWKSURL != "" {
		s.jwks = &jwksSource{url: cfg.JWKSURL, client: &http.Client{Timeout: 10 * time.Second}, store: s.store, logger: a.logger}
		if old := a.running; old != nil && old.cfg.JWKSURL == cfg.JWKSURL {
			if keys, ok := old.store.get(sourceJWKS); ok {
				s.store.set(sourceJWKS, keys)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), jwksStartTimeout)
		err := s.jwks.refresh(ctx)
		cancel()
		if err != nil {
			a.logger.Error("auth: jwks fetch failed at start, retrying in the background", "url", cfg.JWKSURL, "err", err)
		}
		s.jwksHealthy = err == nil
	}
	return s, nil
}

func (s *keySources) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	refresh := time.Duration(s.cfg.KeyRefreshInterval)
	if refresh <= 0 {
		refresh = 5 * time.Minute
	}
	if s.files != nil {
		poll := min(filePollInterval, refresh)
		s.done.Go(func() {
			t := time.NewTicker(poll)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					s.files.poll()
				}
			}
		})
	}
	if s.jwks != nil {
		s.done.Go(func() { s.jwks.run(ctx, refresh, s.jwksHealthy) })
	}
}

func (s *keySources) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.done.Wait()
}

func policyOf(cfg config.AuthConfig) Policy {
	return Policy{Issuer: cfg.Issuer, Audience: cfg.Audience, Leeway: time.Duration(cfg.Leeway),
		TenantClaim: cfg.TenantClaim, RequireTenant: cfg.RequireTenant}
}

func hasKeySource(cfg config.AuthConfig) bool {
	return cfg.PublicKeyFile != "" || cfg.PublicKeysDir != "" || cfg.JWKSURL != ""
}

// requiredOf is auth.required, defaulting to on when any key source is set.
func requiredOf(cfg config.AuthConfig) bool {
	if cfg.Required != nil {
		return *cfg.Required
	}
	return hasKeySource(cfg)
}
