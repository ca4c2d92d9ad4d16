package authtest

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Want is what a protocol must answer to a case.
type Want int

const (
	// Allowed: the request goes through (2xx, gRPC OK or the handler's own
	// answer).
	Allowed Want = iota
	// Unauthenticated: HTTP 401 with WWW-Authenticate, gRPC UNAUTHENTICATED.
	Unauthenticated
	// Forbidden: HTTP 403, gRPC PERMISSION_DENIED; nothing is stored.
	Forbidden
)

func (w Want) String() string {
	switch w {
	case Allowed:
		return "allowed"
	case Unauthenticated:
		return "unauthenticated"
	case Forbidden:
		return "forbidden"
	}
	return "unknown"
}

// Case is one row of the refusal matrix. Token "" means no credentials.
type Case struct {
	Name  string
	Token string
	Want  Want
}

// Matrix is the refusal matrix every protocol adapter must pass for an
// endpoint needing need ("cache:read", "cache:write" or "admin"), against a
// node trusting k (k.Dir() or k.File()) with a leeway under a minute: no
// token, malformed, expired, not yet valid, wrong signature, unknown kid,
// alg none, HS256 signed with the public key, RS384, no permissions, a
// token holding only another scope, and a valid token.
func (k *Keys) Matrix(t testing.TB, need string) []Case {
	t.Helper()
	stranger := k.strangerKey(t)
	other := map[string]string{"cache:read": "cache:write", "cache:write": "cache:read", "admin": "cache:write"}[need]
	return []Case{
		{"no token", "", Unauthenticated},
		{"malformed", "not.a.jwt", Unauthenticated},
		{"expired", k.Token(t, Scopes(need), IssuedAt(-2*time.Hour), ExpiresIn(-time.Hour)), Unauthenticated},
		{"not yet valid", k.Token(t, Scopes(need), NotBefore(time.Hour)), Unauthenticated},
		{"wrong signature", k.Token(t, Scopes(need), SignedBy(stranger)), Unauthenticated},
		{"unknown kid", k.Token(t, Scopes(need), SignedBy(stranger), KID("unknown-kid")), Unauthenticated},
		{"alg none", k.AlgNoneToken(t, Scopes(need)), Unauthenticated},
		{"HS256 signed with the public key", k.HS256PublicKeyToken(t, Scopes(need)), Unauthenticated},
		{"RS384", k.Token(t, Scopes(need), Method(jwt.SigningMethodRS384)), Unauthenticated},
		{"no expiry", k.Token(t, Scopes(need), NoExpiry()), Unauthenticated},
		{"missing scope", k.Token(t, Scopes()), Forbidden},
		{"only " + other, k.Token(t, Scopes(other)), Forbidden},
		{"valid", k.Token(t, Scopes(need)), Allowed},
	}
}
