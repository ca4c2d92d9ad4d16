package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxTokenBytes bounds what the parser will look at, so a huge header costs
// nothing. Tuist's tokens are well under 2 KB.
const maxTokenBytes = 16 << 10

// Policy is what a token must satisfy besides a good signature.
type Policy struct {
	// Issuer and Audience, when not empty, must match iss and aud.
	Issuer   string
	Audience string
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway time.Duration
	// TenantClaim names the claim binding a token to one tenant ("" means
	// project_id); RequireTenant refuses tokens with no tenant claim at
	// all (admin tokens excepted).
	TenantClaim   string
	RequireTenant bool
}

// Validator checks RS256 JWTs against the keys in force. It never does I/O:
// key sources push keys into it in the background, and Validate reads an
// immutable snapshot through an atomic pointer, so it takes no lock.
type Validator struct {
	state atomic.Pointer[validatorState]
	mu    sync.Mutex // serialises writers of state
}

// validatorState is one immutable combination of keys and policy. The
// verified-token cache belongs to it, so changing either (a key removed, a
// new audience) starts from an empty cache and no stale verdict survives.
type validatorState struct {
	keys     *keySet
	parser   *jwt.Parser
	leeway   time.Duration
	tenancy  tenancy
	verified *verifiedCache
}

// tenancy is how tokens name their tenants.
type tenancy struct {
	claim   string
	require bool
}

func tenancyOf(p Policy) tenancy {
	t := tenancy{claim: p.TenantClaim, require: p.RequireTenant}
	if t.claim == "" {
		t.claim = "project_id"
	}
	return t
}

// NewValidator returns a validator with policy p and no keys: until keys are
// set, every token is refused.
func NewValidator(p Policy) *Validator {
	v := &Validator{}
	v.state.Store(&validatorState{keys: &keySet{}, parser: newParser(p), leeway: p.Leeway, tenancy: tenancyOf(p), verified: newVerifiedCache()})
	return v
}

func newParser(p Policy) *jwt.Parser {
	opts := []jwt.ParserOption{
		// The one line that stops alg:none, HS256-with-the-public-key and
		// every algorithm but RS256, before any key is looked up.
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(p.Leeway),
	}
	if p.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(p.Issuer))
	}
	if p.Audience != "" {
		opts = append(opts, jwt.WithAudience(p.Audience))
	}
	return jwt.NewParser(opts...)
}

// SetPolicy replaces the policy; tokens verified under the old one are
// checked again.
func (v *Validator) SetPolicy(p Policy) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.state.Load()
	v.state.Store(&validatorState{keys: old.keys, parser: newParser(p), leeway: p.Leeway, tenancy: tenancyOf(p), verified: newVerifiedCache()})
}

// setKeys replaces the keys in force; called by the key store.
func (v *Validator) setKeys(keys *keySet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.state.Load()
	v.state.Store(&validatorState{keys: keys, parser: old.parser, leeway: old.leeway, tenancy: old.tenancy, verified: newVerifiedCache()})
}

// KeyIDs lists the kids in force (keys that match any kid are not listed),
// for diagnostics and the ops API.
func (v *Validator) KeyIDs() []string {
	keys := v.state.Load().keys
	ids := make([]string, 0, len(keys.byKID))
	for kid := range keys.byKID {
		ids = append(ids, kid)
	}
	return ids
}

// Validate verifies token and returns its principal. Errors wrap
// ErrInvalidToken (or ErrNoToken for an empty string).
func (v *Validator) Validate(token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	if len(token) > maxTokenBytes {
		return Principal{}, fmt.Errorf("%w: token is %d bytes, limit %d", ErrInvalidToken, len(token), maxTokenBytes)
	}
	st := v.state.Load()
	if st.keys.empty() {
		return Principal{}, fmt.Errorf("%w: no verification keys loaded", ErrInvalidToken)
	}
	if p, ok := st.verified.get(token, time.Now()); ok {
		return p, nil
	}
	p, deadline, err := st.verify(token)
	if err != nil {
		return Principal{}, err
	}
	st.verified.put(token, p, deadline)
	return p, nil
}

// verify does the full check: signature, algorithm, claims. deadline is
// when the verdict expires (exp plus leeway).
func (st *validatorState) verify(token string) (p Principal, deadline time.Time, err error) {
	var c tokenClaims
	tok, err := st.parser.ParseWithClaims(token, &c, st.keys.keyFor)
	if err != nil {
		return Principal{}, time.Time{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	kid, _ := tok.Header["kid"].(string)
	p = Principal{
		Subject:     c.Subject,
		ProjectID:   c.ProjectID,
		InstanceID:  c.InstanceID,
		Permissions: c.Permissions,
		KeyID:       kid,
		ExpiresAt:   c.ExpiresAt.Time,
		scopes:      scopesFromPermissions(c.Permissions),
	}
	if p.Tenant, p.Tenants, err = st.tenancy.of(&c); err != nil {
		return Principal{}, time.Time{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if st.tenancy.require && p.Tenant == "" && len(p.Tenants) == 0 && !p.Has(Admin) {
		return Principal{}, time.Time{}, fmt.Errorf("%w: token names no tenant (claim %q or \"tenants\") and auth.require_tenant is on", ErrInvalidToken, st.tenancy.claim)
	}
	return p, c.ExpiresAt.Add(st.leeway), nil
}

// keyFor is the jwt Keyfunc: the key named by kid, then the keys that match
// any kid. The signing method has already been checked by the parser.
func (s *keySet) keyFor(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	named, ok := s.byKID[kid]
	switch {
	case ok && len(s.anyKID) == 0:
		return named, nil
	case !ok && len(s.anyKID) == 1:
		return s.anyKID[0], nil
	case !ok && len(s.anyKID) == 0:
		if kid == "" {
			return nil, errors.New("token has no kid and no key matches any kid")
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, 0, 1+len(s.anyKID))}
	if ok {
		set.Keys = append(set.Keys, named)
	}
	for _, k := range s.anyKID {
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// tokenClaims are the claims Tuist puts in a token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Permissions permissions `json:"permissions"`
	ProjectID   string      `json:"project_id"`
	InstanceID  string      `json:"instance_id"`
	Tenants     []string    `json:"tenants"`
	// all holds every claim as sent, for a tenant claim with another name.
	all map[string]json.RawMessage
}

// UnmarshalJSON decodes the known claims and keeps the raw set.
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	type plain tokenClaims
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	return json.Unmarshal(b, &c.all)
}

// of reads the token's tenant (the configured claim) and the tenants a
// machine token serves. Names must be safe as a namespace segment.
func (t tenancy) of(c *tokenClaims) (string, []string, error) {
	var tenant string
	if raw, ok := c.all[t.claim]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &tenant); err != nil {
			return "", nil, fmt.Errorf("tenant claim %q must be a string", t.claim)
		}
		if tenant != "" && !ValidTenant(tenant) { // "" is no tenant
			return "", nil, fmt.Errorf("tenant claim %q: %q is not a tenant name (1-128 of A-Z a-z 0-9 . _ -)", t.claim, tenant)
		}
	}
	for _, name := range c.Tenants {
		if name != "*" && !ValidTenant(name) {
			return "", nil, fmt.Errorf("tenants claim: %q is not a tenant name", name)
		}
	}
	return tenant, c.Tenants, nil
}

// ValidTenant reports whether name can be a tenant: it becomes a namespace
// segment, so it may not contain '/' or anything a log would mangle.
func ValidTenant(name string) bool {
	if name == "" || len(name) > 128 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// permissions accepts a JSON array of strings or, as OAuth scope claims are
// often written, one space-separated string.
type permissions []string

func (p *permissions) UnmarshalJSON(data []byte) error {
	var list []string
	if err := json.Unmarshal(data, &list); err == nil {
		*p = list
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("permissions: want an array of strings or a string: %w", err)
	}
	*p = strings.Fields(s)
	return nil
}

// verifiedCache remembers tokens whose signature has been verified, so the
// same token on the next request (build tools send one token thousands of
// times) costs a map lookup instead of an RSA verification (~70 us on a slow
// core). The key is the whole token string, so only the exact bytes already
// verified hit; exp is still checked on every hit.
type verifiedCache struct {
	m atomic.Pointer[sync.Map] // string -> *verifiedEntry
	n atomic.Int64
}

// verifiedCacheMax bounds memory (a few MB at most); when full the cache is
// dropped whole, which costs one verification per live token.
const verifiedCacheMax = 4096

type verifiedEntry struct {
	p        Principal
	deadline time.Time // exp plus leeway
}

func newVerifiedCache() *verifiedCache {
	c := &verifiedCache{}
	c.m.Store(new(sync.Map))
	return c
}

func (c *verifiedCache) get(token string, now time.Time) (Principal, bool) {
	v, ok := c.m.Load().Load(token)
	if !ok {
		return Principal{}, false
	}
	e := v.(*verifiedEntry)
	if !now.Before(e.deadline) {
		c.m.Load().Delete(token)
		return Principal{}, false
	}
	return e.p, true
}

func (c *verifiedCache) put(token string, p Principal, deadline time.Time) {
	if c.n.Add(1) > verifiedCacheMax {
		c.m.Store(new(sync.Map))
		c.n.Store(1)
	}
	c.m.Load().Store(token, &verifiedEntry{p: p, deadline: deadline})
}
