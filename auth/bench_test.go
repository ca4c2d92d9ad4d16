package auth

import (
	"io"
	"log/slog"
	"testing"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
)

func benchAuthenticator(b *testing.B) (*Authenticator, string) {
	keys := authtest.New(b)
	a, err := New(config.AuthConfig{PublicKeysDir: keys.Dir()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return a, keys.Token(b, authtest.Subject("customer_123"), authtest.Project("proj_456"),
		authtest.Instance("fabrik_regional_us-east"), authtest.Scopes("cache:read", "cache:write"))
}

// BenchmarkValidate is the request path: a build tool's token seen before,
// against cached parsed keys.
func BenchmarkValidate(b *testing.B) {
	a, tok := benchAuthenticator(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(tok, Read); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateParallel is the same on every core at once (the
// validator takes no lock).
func BenchmarkValidateParallel(b *testing.B) {
	a, tok := benchAuthenticator(b)
	if _, err := a.Authenticate(tok, Read); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Authenticate(tok, Read); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkValidateFirstSight is a token never seen before: the full parse
// and RSA-2048 signature verification with cached parsed keys.
func BenchmarkValidateFirstSight(b *testing.B) {
	a, tok := benchAuthenticator(b)
	st := a.validator.state.Load()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := st.verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
