package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/e2e/harness"
	"github.com/tuist/fabrik-node/internal/ghatest"
)

// actionsCacheClient runs e2e/testdata/actions-cache/cache.mjs with the
// pinned @actions/cache against s, in workspace dir.
type actionsCacheClient struct {
	t      *testing.T
	node   string
	script string
	dir    string
	env    []string
}

func newActionsCacheClient(t *testing.T, s *ghatest.Server, legacy bool, scopes ...ghatest.Scope) *actionsCacheClient {
	t.Helper()
	node := harness.RequireTool(t, "node")
	mods := harness.NodeModulesDir()
	if _, err := os.Stat(filepath.Join(mods, "@actions", "cache", "package.json")); err != nil {
		if harness.MustHaveTools() {
			t.Fatalf("@actions/cache not installed in %s: run scripts/install-tools.sh node", mods)
		}
		t.Skipf("@actions/cache not installed in %s: run scripts/install-tools.sh node", mods)
	}
	dir := harness.CopyFixture(t, "actions-cache")
	if err := os.Symlink(mods, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"ACTIONS_RUNTIME_TOKEN=" + s.Token(time.Hour, scopes...),
		"GITHUB_WORKSPACE=" + dir,
		"RUNNER_TEMP=" + t.TempDir(),
		"RUNNER_DEBUG=1", // the library's core.debug lines, to see each request in a failure
	}
	if legacy {
		// GitHub Enterprise Server keeps the legacy API: the library picks
		// it for any server other than github.com.
		env = append(env, "ACTIONS_CACHE_URL="+s.URL, "GITHUB_SERVER_URL=https://ghes.example.com")
	} else {
		env = append(env, "ACTIONS_RESULTS_URL="+s.URL, "ACTIONS_CACHE_SERVICE_V2=true")
	}
	return &actionsCacheClient{t: t, node: node, script: filepath.Join(dir, "cache.mjs"), dir: dir, env: env}
}

func (c *actionsCacheClient) run(args ...string) string {
	c.t.Helper()
	out, err := harness.RunTimeout(c.t, 2*time.Minute, c.dir, c.env, c.node, append([]string{c.script}, args...)...)
	if err != nil {
		c.t.Fatalf("node cache.mjs %v: %v\n%s", args, err, out)
	}
	return out
}

func resultLine(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix+" "); ok {
			return v
		}
		if strings.TrimSpace(l) == prefix {
			return ""
		}
	}
	t.Fatalf("no %q line in:\n%s", prefix, out)
	return ""
}

// TestActionsCacheClientAgainstTestServer proves internal/ghatest faithful
// enough to test the tier with: the real @actions/cache client saves,
// refuses a second save of the same key, restores by key and by restore
// key prefix, misses, and sees branch scopes, through both the v2 twirp
// API and the legacy REST API.
func TestActionsCacheClientAgainstTestServer(t *testing.T) {
	for _, api := range []string{"v2", "legacy"} {
		t.Run(api, func(t *testing.T) {
			s, err := ghatest.New()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			main := ghatest.Scope{Scope: "refs/heads/main", Permission: ghatest.Read | ghatest.Write}
			c := newActionsCacheClient(t, s, api == "legacy", main)
			files := map[string][]byte{
				"out/a.txt":       []byte("hello from the build\n"),
				"out/sub/b.bin":   bytes.Repeat([]byte{0, 1, 2, 3, 255}, 300_000),
				"out/sub/empty":   nil,
				"out/c/d/e/f.txt": []byte(strings.Repeat("x", 4097)),
			}
			for p, b := range files {
				full := filepath.Join(c.dir, p)
				os.MkdirAll(filepath.Dir(full), 0o755)
				if err := os.WriteFile(full, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := c.run("save", "build-linux-abc123", "out")
			if id := resultLine(t, out, "SAVED"); id == "-1" || id == "" {
				t.Fatalf("saveCache returned %q:\n%s", id, out)
			}
			if cnt := s.Counts(); cnt.Finalizes != 1 {
				t.Fatalf("server finalized %d entries, want 1", cnt.Finalizes)
			}

			// Entries are immutable: the client is told another job has it.
			out = c.run("save", "build-linux-abc123", "out")
			if id := resultLine(t, out, "SAVED"); id != "-1" {
				t.Fatalf("second saveCache of the same key returned %q, want -1:\n%s", id, out)
			}
			if !strings.Contains(out, "Unable to reserve cache with key build-linux-abc123") {
				t.Fatalf("second save did not report the reservation conflict:\n%s", out)
			}

			os.RemoveAll(filepath.Join(c.dir, "out"))
			out = c.run("restore", "build-linux-abc123", "-", "out")
			if got := resultLine(t, out, "RESTORED"); got != "build-linux-abc123" {
				t.Fatalf("restore by key matched %q:\n%s", got, out)
			}
			for p, want := range files {
				got, err := os.ReadFile(filepath.Join(c.dir, p))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("restored %s: %d bytes, %v; want %d bytes", p, len(got), err, len(want))
				}
			}

			out = c.run("restore", "build-linux-zzz", "build-linux-", "out")
			if got := resultLine(t, out, "RESTORED"); got != "build-linux-abc123" {
				t.Fatalf("restore by prefix matched %q:\n%s", got, out)
			}
			out = c.run("restore", "build-mac-abc123", "build-mac-", "out")
			if got := resultLine(t, out, "RESTORED"); got != "" {
				t.Fatalf("restore of an absent key matched %q:\n%s", got, out)
			}

			// Another branch reads main's entry through its token's second
			// scope; main does not see what the branch saves.
			feature := newActionsCacheClient(t, s, api == "legacy",
				ghatest.Scope{Scope: "refs/heads/feature", Permission: ghatest.Read | ghatest.Write},
				ghatest.Scope{Scope: "refs/heads/main", Permission: ghatest.Read})
			os.MkdirAll(filepath.Join(feature.dir, "out"), 0o755)
			os.WriteFile(filepath.Join(feature.dir, "out", "f.txt"), []byte("feature"), 0o644)
			if got := resultLine(t, feature.run("restore", "build-linux-abc123", "-", "out"), "RESTORED"); got != "build-linux-abc123" {
				t.Fatalf("feature branch restore of main's entry matched %q", got)
			}
			if id := resultLine(t, feature.run("save", "feature-only", "out"), "SAVED"); id == "-1" {
				t.Fatal("feature branch save failed")
			}
			if got := resultLine(t, c.run("restore", "feature-only", "-", "out"), "RESTORED"); got != "" {
				t.Fatalf("main restored the feature branch's entry %q", got)
			}
		})
	}
}

// TestEdgeUsesGitHubActionsCache runs the real binary as a CI job would:
// the runner's variables set, no upstream configured. The first job's edge
// writes an artifact through to the Actions cache; the next job's edge
// (empty cache dir) serves it from there.
func TestEdgeUsesGitHubActionsCache(t *testing.T) {
	s, err := ghatest.New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	env := []string{
		"ACTIONS_RUNTIME_TOKEN=" + s.Token(time.Hour, ghatest.Scope{Scope: "refs/heads/main", Permission: ghatest.Read | ghatest.Write}),
		"ACTIONS_RESULTS_URL=" + s.URL,
		"ACTIONS_CACHE_SERVICE_V2=true",
	}
	job1 := harness.StartNode(t, nil, env)
	if !strings.Contains(job1.Logs(), "[fabrik] detected GitHub Actions cache") {
		t.Fatalf("no detection line in the log:\n%s", job1.Logs())
	}
	body := bytes.Repeat([]byte("artifact-bytes-"), 50_000)
	const key = "aabbccddeeff00112233445566778899"
	req, _ := http.NewRequest(http.MethodPut, job1.HTTPURL()+"/cache/"+key, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.Counts().Finalizes < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("artifact never reached the Actions cache; server saw %+v", s.Counts())
		}
		time.Sleep(50 * time.Millisecond)
	}
	job1.Stop()

	job2 := harness.StartNode(t, nil, env)
	resp, err = http.Get(job2.HTTPURL() + "/cache/" + key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET from the next job: %s, %d bytes; want 200 and %d bytes", resp.Status, len(got), len(body))
	}
	metrics := scrapeText(t, job2.APIURL()+"/metrics")
	if !strings.Contains(metrics, `fabrik_upstream_requests_total{upstream="github-actions",result="hit"} 1`) {
		t.Fatalf("no upstream hit for github-actions in /metrics:\n%s", grepLines(metrics, "upstream"))
	}

	// [cache] github_actions = false: the same job environment, no tier.
	off := harness.StartNode(t, []string{"--config-cache-github-actions=false"}, env)
	if strings.Contains(off.Logs(), "GitHub Actions") {
		t.Fatalf("github_actions = false still detected:\n%s", off.Logs())
	}
}

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
