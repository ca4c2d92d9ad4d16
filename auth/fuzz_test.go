package auth

import (
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
)

// FuzzValidate feeds tokens whose header and payload segments are fuzzed
// JSON (alg "none", HS256 with the public key as secret, odd kid types, huge
// or nested claims) and whose signature is fuzzed: parsing the header
// before verification never panics, every failure wraps ErrInvalidToken or
// ErrNoToken, and a token is accepted only if its signed part is exactly
// what the key holder signed (the fuzzer cannot forge the RSA signature).
func FuzzValidate(f *testing.F) {
	keys := authtest.New(f)
	a, err := New(config.AuthConfig{PublicKeysDir: keys.Dir()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	good := keys.Token(f, authtest.Subject("customer_1"), authtest.Scopes("cache:read"))
	parts := strings.Split(good, ".")
	if len(parts) != 3 {
		f.Fatalf("token %q has %d parts", good, len(parts))
	}
	signed := parts[0] + "." + parts[1]
	dec := func(s string) string { b, _ := base64.RawURLEncoding.DecodeString(s); return string(b) }
	f.Add(dec(parts[0]), dec(parts[1]), parts[2], "")
	f.Add(`{"alg":"none","typ":"JWT"}`, dec(parts[1]), "", "")
	f.Add(`{"alg":"HS256","typ":"JWT"}`, dec(parts[1]), parts[2], "")
	f.Add(`{"alg":"RS256","kid":{"x":1}}`, `{"sub":1,"exp":"never"}`, parts[2], "")
	f.Add(`{"alg":"RS256","kid":[]}`, `{"permissions":{"a":null},"tenants":[1,2]}`, parts[2], "")
	f.Add(`not json`, `[]`, "!!", "")
	f.Add("", "", "", "a.b")
	f.Add("", "", "", good)
	f.Fuzz(func(t *testing.T, header, payload, sig, raw string) {
		token := raw
		if token == "" {
			token = base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + sig
		}
		_, err := a.Validator().Validate(token)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrNoToken) {
				t.Fatalf("Validate error %v wraps neither ErrInvalidToken nor ErrNoToken", err)
			}
			return
		}
		if got := token[:strings.LastIndexByte(token, '.')]; got != signed {
			t.Fatalf("accepted a token whose signed part %q is not the one signed", got)
		}
	})
}
