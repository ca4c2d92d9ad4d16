package node

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/internal/ghatest"
	"github.com/tuist/fabrik-node/messages"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startLoggedNode(t *testing.T, c config.Config) (*Node, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	n, err := New(Options{Role: config.RoleEdge, Config: c, Logger: slog.New(slog.NewTextHandler(buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { n.Stop(t.Context()) })
	return n, buf
}

func setActionsEnv(t *testing.T, s *ghatest.Server, scopes ...ghatest.Scope) {
	t.Setenv("ACTIONS_RUNTIME_TOKEN", s.Token(time.Hour, scopes...))
	t.Setenv("ACTIONS_RESULTS_URL", s.URL)
	t.Setenv("ACTIONS_CACHE_SERVICE_V2", "true")
	t.Setenv("ACTIONS_CACHE_URL", "")
}

// Inside an Actions job, an edge with no upstream configured writes
// through to the Actions cache, and a fresh edge (the next job) reads from
// it; [cache] github_actions = false turns detection off.
func TestGitHubActionsTierDetected(t *testing.T) {
	s, err := ghatest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	setActionsEnv(t, s, ghatest.Scope{Scope: "refs/heads/main", Permission: ghatest.Read | ghatest.Write})

	a, logs := startLoggedNode(t, testConfig(t, config.RoleEdge, t.TempDir()))
	if !strings.Contains(logs.String(), "[fabrik] detected GitHub Actions cache") || !strings.Contains(logs.String(), "api=v2") {
		t.Fatalf("no detection line in the log:\n%s", logs)
	}
	body := randomBytes(t, 300_000)
	gradlePut(t, a, key1, body)
	eventually(t, "write-through to the Actions cache", func() bool { return s.Counts().Finalizes >= 1 })

	b, _ := startLoggedNode(t, testConfig(t, config.RoleEdge, t.TempDir()))
	ref := messages.Ref{Namespace: "gradle", Key: key1}
	if localHas(b, ref) {
		t.Fatal("fresh edge already holds the artifact")
	}
	if got := gradleGet(t, b, key1); !bytes.Equal(got, body) {
		t.Fatalf("read through the Actions cache: %d bytes, want %d", len(got), len(body))
	}
	eventually(t, "local copy after the read", func() bool { return localHas(b, ref) })
	// The dashboard lists the tier with its hit.
	_, d := api(t, b, "GET", "/api/v1/stats/detail", "", nil)
	ups := d["upstreams"].([]any)
	if len(ups) != 1 || ups[0].(map[string]any)["name"] != "github-actions" || ups[0].(map[string]any)["state"] != "ok" || ups[0].(map[string]any)["hits"].(float64) != 1 {
		t.Errorf("dashboard upstreams %v, want github-actions ok with 1 hit", ups)
	}

	off := false
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Cache.GitHubActions = &off
	_, logs = startLoggedNode(t, c)
	if strings.Contains(logs.String(), "GitHub Actions") {
		t.Fatalf("github_actions = false still detected:\n%s", logs)
	}
}
