package auth

import "errors"

// The three outcomes a caller may count or map to a protocol status. Errors
// returned by this package wrap exactly one of them (and, for invalid tokens,
// the jwt library's reason, so errors.Is(err, jwt.ErrTokenExpired) works).
var (
	// ErrNoToken: the request carried no credentials (HTTP 401, gRPC
	// UNAUTHENTICATED).
	ErrNoToken = errors.New("no token")
	// ErrInvalidToken: credentials were present but did not verify: bad
	// signature, unknown kid, wrong algorithm, expired, not yet valid, wrong
	// issuer or audience, malformed (HTTP 401, gRPC UNAUTHENTICATED).
	ErrInvalidToken = errors.New("invalid token")
	// ErrForbidden: the token is valid but lacks the scope the request needs
	// (HTTP 403, gRPC PERMISSION_DENIED).
	ErrForbidden = errors.New("forbidden")
)

// IsUnauthenticated reports whether err means "who are you?" rather than
// "you may not".
func IsUnauthenticated(err error) bool {
	return errors.Is(err, ErrNoToken) || errors.Is(err, ErrInvalidToken)
}
