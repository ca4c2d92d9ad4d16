package auth_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/config"
)

func mustToken(t *testing.T, s *auth.TokenSource) string {
	t.Helper()
	tok, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenSourcePrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FABRIK_TOKEN", "from-env")
	for _, c := range []struct {
		name string
		cfg  config.AuthConfig
		want string
	}{
		{"token wins", config.AuthConfig{Token: "from-config", TokenFile: file}, "from-config"},
		{"then token_file, trimmed", config.AuthConfig{TokenFile: file}, "from-file"},
		{"then FABRIK_TOKEN", config.AuthConfig{}, "from-env"},
		{"token_file not there yet", config.AuthConfig{TokenFile: filepath.Join(t.TempDir(), "absent")}, ""},
	} {
		if got := mustToken(t, auth.NewTokenSource(c.cfg, nil)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	var none *auth.TokenSource
	if got := mustToken(t, none); got != "" {
		t.Errorf("nil source: %q", got)
	}
}

// `tuist auth login` writing the token file after the daemon started, and
// refreshing it later, takes effect without a restart.
func TestTokenFileReread(t *testing.T) {
	file := filepath.Join(t.TempDir(), ".fabrik.token")
	s := auth.NewTokenSource(config.AuthConfig{TokenFile: file}, nil)
	h := http.Header{}
	if err := s.SetHeader(h); err != nil || h.Get("Authorization") != "" {
		t.Fatalf("no token yet: header %q err %v", h.Get("Authorization"), err)
	}
	if err := os.WriteFile(file, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "token file picked up", func() bool { return mustToken(t, s) == "first" })
	if err := os.WriteFile(file, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "token file change picked up", func() bool { return mustToken(t, s) == "second" })
	if err := s.SetHeader(h); err != nil || h.Get("Authorization") != "Bearer second" {
		t.Fatalf("header %q err %v", h.Get("Authorization"), err)
	}
}
