package authtest

import (
	"crypto/rsa"
	"maps"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Option shapes one token.
type Option func(*tokenSpec)

type tokenSpec struct {
	kid       *string
	method    jwt.SigningMethod
	signer    *rsa.PrivateKey
	claims    jwt.MapClaims
	noExpiry  bool
	expiresIn time.Duration
}

// Scopes sets the permissions claim (default: cache:read and cache:write).
func Scopes(perms ...string) Option {
	return func(s *tokenSpec) { s.claims["permissions"] = perms }
}

// ExpiresIn sets exp relative to now; negative for an expired token.
func ExpiresIn(d time.Duration) Option { return func(s *tokenSpec) { s.expiresIn = d } }

// NoExpiry leaves exp out.
func NoExpiry() Option { return func(s *tokenSpec) { s.noExpiry = true } }

// NotBefore sets nbf relative to now.
func NotBefore(d time.Duration) Option {
	return func(s *tokenSpec) { s.claims["nbf"] = time.Now().Add(d).Unix() }
}

// IssuedAt sets iat relative to now.
func IssuedAt(d time.Duration) Option {
	return func(s *tokenSpec) { s.claims["iat"] = time.Now().Add(d).Unix() }
}

// Subject sets sub (default "test-subject").
func Subject(sub string) Option { return Claim("sub", sub) }

// Project sets project_id.
func Project(id string) Option { return Claim("project_id", id) }

// Instance sets instance_id.
func Instance(id string) Option { return Claim("instance_id", id) }

// Issuer sets iss.
func Issuer(iss string) Option { return Claim("iss", iss) }

// Audience sets aud.
func Audience(aud string) Option { return Claim("aud", aud) }

// Claim sets any claim.
func Claim(name string, value any) Option { return func(s *tokenSpec) { s.claims[name] = value } }

// KID sets the kid header ("" leaves it out) instead of the key's own.
func KID(kid string) Option { return func(s *tokenSpec) { s.kid = &kid } }

// Method signs with another RSA method (jwt.SigningMethodRS384...), which a
// node must refuse.
func Method(m jwt.SigningMethod) Option { return func(s *tokenSpec) { s.method = m } }

// SignedBy signs with another private key while keeping this key's kid: a
// forged signature.
func SignedBy(priv *rsa.PrivateKey) Option { return func(s *tokenSpec) { s.signer = priv } }

// Token mints an RS256 token signed by k, valid for an hour, with
// permissions cache:read and cache:write unless opts say otherwise.
func (k *Keys) Token(t testing.TB, opts ...Option) string {
	t.Helper()
	s := k.spec(opts)
	tok := jwt.NewWithClaims(s.method, s.claims)
	if *s.kid != "" {
		tok.Header["kid"] = *s.kid
	}
	signed, err := tok.SignedString(s.signer)
	if err != nil {
		t.Fatalf("authtest: sign: %v", err)
	}
	return signed
}

func (k *Keys) spec(opts []Option) *tokenSpec {
	now := time.Now()
	s := &tokenSpec{
		kid:       &k.kid,
		method:    jwt.SigningMethodRS256,
		signer:    k.priv,
		expiresIn: time.Hour,
		claims: jwt.MapClaims{
			"sub":         "test-subject",
			"iat":         now.Unix(),
			"permissions": []string{"cache:read", "cache:write"},
		},
	}
	for _, o := range opts {
		o(s)
	}
	if !s.noExpiry {
		if _, set := s.claims["exp"]; !set {
			s.claims["exp"] = now.Add(s.expiresIn).Unix()
		}
	}
	return s
}

// AlgNoneToken is an unsigned token (alg "none") naming k's kid.
func (k *Keys) AlgNoneToken(t testing.TB, opts ...Option) string {
	t.Helper()
	s := k.spec(opts)
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, s.claims)
	tok.Header["kid"] = *s.kid
	signed, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatalf("authtest: alg none: %v", err)
	}
	return signed
}

// HS256PublicKeyToken is the classic key-confusion forgery: HS256 with the
// public key's PEM bytes as the HMAC secret, accepted by validators that
// let the token choose the algorithm.
func (k *Keys) HS256PublicKeyToken(t testing.TB, opts ...Option) string {
	t.Helper()
	s := k.spec(opts)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, maps.Clone(s.claims))
	tok.Header["kid"] = *s.kid
	signed, err := tok.SignedString(k.pem)
	if err != nil {
		t.Fatalf("authtest: hs256: %v", err)
	}
	return signed
}
