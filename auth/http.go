package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Realm is the realm named in WWW-Authenticate challenges.
const Realm = "fabrik"

// ErrorWriter writes the body of a refusal. The status (401 or 403) and the
// WWW-Authenticate header are already decided; the writer sets the content
// type, calls WriteHeader(status) and writes the body. err wraps ErrNoToken,
// ErrInvalidToken or ErrForbidden.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, status int, err error)

// HTTPOption adjusts the HTTP middleware for one adapter.
type HTTPOption func(*httpOptions)

type httpOptions struct {
	basicChallenge bool
	writeError     ErrorWriter
}

// BasicChallenge also offers Basic in WWW-Authenticate, for clients that
// only send credentials when challenged for Basic (Gradle). Basic is
// accepted on every endpoint either way.
func BasicChallenge() HTTPOption { return func(o *httpOptions) { o.basicChallenge = true } }

// WithErrorWriter replaces the default text/plain refusal body.
func WithErrorWriter(fn ErrorWriter) HTTPOption { return func(o *httpOptions) { o.writeError = fn } }

// TextError is the default refusal body: text/plain, one line (what Nx
// requires of a 401).
func TextError(w http.ResponseWriter, _ *http.Request, status int, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(http.StatusText(status) + ": " + err.Error() + "\n"))
}

// JSONError writes {"error":{"code":"...","message":"..."}}, the error
// shape of the Vercel remote cache API that Turborepo parses.
func JSONError(w http.ResponseWriter, _ *http.Request, status int, err error) {
	code := "unauthorized"
	if status == http.StatusForbidden {
		code = "forbidden"
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, err.Error()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// ByHTTPMethod is the usual mapping for cache endpoints: GET and HEAD read,
// OPTIONS (CORS preflight, which never carries credentials) is public, every
// other method writes.
func ByHTTPMethod(r *http.Request) Scope {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return Read
	case http.MethodOptions:
		return Public
	}
	return Write
}

// Require protects next with one fixed scope.
func (a *Authenticator) Require(need Scope, next http.Handler, opts ...HTTPOption) http.Handler {
	return a.HTTP(func(*http.Request) Scope { return need }, next, opts...)
}

// HTTP protects next: scopeFor says what each request needs (nil means
// ByHTTPMethod). Requests that
// pass reach next with their Principal in the context (FromContext);
// refused ones get 401 with a challenge, or 403, and never reach next, so a
// refused upload stores nothing.
func (a *Authenticator) HTTP(scopeFor func(*http.Request) Scope, next http.Handler, opts ...HTTPOption) http.Handler {
	if scopeFor == nil {
		scopeFor = ByHTTPMethod
	}
	o := httpOptions{writeError: TextError}
	for _, opt := range opts {
		opt(&o)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := scopeFor(r)
		p, err := a.Authenticate(HTTPToken(r), need)
		if err != nil {
			a.refuseHTTP(w, r, need, err, &o)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), p)))
	})
}

func (a *Authenticator) refuseHTTP(w http.ResponseWriter, r *http.Request, need Scope, err error, o *httpOptions) {
	status := http.StatusUnauthorized
	bearer := `Bearer realm="` + Realm + `"`
	switch {
	case errors.Is(err, ErrForbidden):
		status = http.StatusForbidden
		w.Header().Add("WWW-Authenticate", bearer+`, error="insufficient_scope", scope="`+string(need)+`"`)
	case errors.Is(err, ErrInvalidToken):
		w.Header().Add("WWW-Authenticate", bearer+`, error="invalid_token"`)
	default:
		w.Header().Add("WWW-Authenticate", bearer)
	}
	if status == http.StatusUnauthorized && o.basicChallenge {
		w.Header().Add("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	}
	a.logger.Info("auth: request refused", "status", status, "method", r.Method, "path", r.URL.Path,
		"remote", r.RemoteAddr, "need", string(need), "err", err)
	o.writeError(w, r, status, err)
}

// HTTPToken extracts the token from Authorization: Bearer <token>, or from
// Basic credentials, where the token is the password (Gradle's
// credentials { username; password }) or, with an empty password, the
// username.
func HTTPToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok {
		return ""
	}
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return rest
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return ""
		}
		user, pass, _ := strings.Cut(string(raw), ":")
		if pass != "" {
			return pass
		}
		return user
	}
	return ""
}
