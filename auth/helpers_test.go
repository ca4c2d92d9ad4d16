package auth_test

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/config"
)

// logBuffer captures the authenticator's logs so tests can assert on what
// an operator would see.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newAuth(t *testing.T, cfg config.AuthConfig) (*auth.Authenticator, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	a, err := auth.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, logs
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func boolPtr(b bool) *bool { return &b }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func newRequest(url, authorization string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, url+"/cache/abc", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", authorization)
	return req, nil
}
