package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// turboTasks is how many cacheable tasks the fixture runs (a#build, b#build).
const turboTasks = 2

// turboRun runs `turbo run build` in dir against the node with a fresh
// --cache-dir and no outputs, so a hit can only come from the remote cache,
// and returns the output and the cache status of each task from the run
// summary.
func turboRun(t *testing.T, turbo, dir string, n *harness.Node, extraEnv ...string) (string, []turboCache) {
	t.Helper()
	for _, p := range []string{"a", "b"} {
		if err := os.RemoveAll(filepath.Join(dir, "packages", p, "dist")); err != nil {
			t.Fatal(err)
		}
	}
	runs := filepath.Join(dir, ".turbo", "runs")
	if err := os.RemoveAll(runs); err != nil {
		t.Fatal(err)
	}
	env := append(harness.TurboEnv(),
		"TURBO_API="+n.HTTPURL(),
		"TURBO_TOKEN=e2e",
		"TURBO_TEAM=fabrik")
	env = append(env, extraEnv...)
	out, err := harness.Run(t, dir, env, turbo, "run", "build", "--summarize",
		"--cache-dir="+filepath.Join(t.TempDir(), "turbo-cache"))
	if err != nil {
		t.Fatalf("turbo run build: %v\n%s", err, out)
	}
	mustContain(t, out, "2 successful, 2 total")
	return out, turboSummary(t, runs)
}

// turboCache is a task's "cache" object in turbo's run summary.
type turboCache struct {
	Local  bool   `json:"local"`
	Remote bool   `json:"remote"`
	Status string `json:"status"`
	Source string `json:"source"`
}

// turboSummary reads the one run summary --summarize wrote into runs.
func turboSummary(t *testing.T, runs string) []turboCache {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(runs, "*.json"))
	if err != nil || len(files) != 1 {
		t.Fatalf("want one run summary in %s, got %v (%v)", runs, files, err)
	}
	body, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Tasks []struct {
			TaskID string     `json:"taskId"`
			Cache  turboCache `json:"cache"`
		} `json:"tasks"`
	}
	decodeJSON(t, body, &sum)
	var out []turboCache
	for _, task := range sum.Tasks {
		out = append(out, task.Cache)
	}
	return out
}

// turboMustHit checks that every task was a remote hit, by the log and by
// the run summary, and that the outputs came back.
func turboMustHit(t *testing.T, dir, out string, tasks []turboCache) {
	t.Helper()
	mustContain(t, out, "2 cached, 2 total", "FULL TURBO")
	if len(tasks) != turboTasks {
		t.Fatalf("run summary lists %d tasks, want %d", len(tasks), turboTasks)
	}
	for _, c := range tasks {
		if c.Status != "HIT" || c.Source != "REMOTE" || !c.Remote || c.Local {
			t.Fatalf("task cache %+v, want a remote hit", c)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "packages", "b", "dist", "index.js")); err != nil {
		t.Fatalf("remote hit did not restore outputs: %v", err)
	}
}

func turboMustMiss(t *testing.T, out string, tasks []turboCache) {
	t.Helper()
	mustContain(t, out, "0 cached, 2 total")
	mustNotContain(t, out, "FULL TURBO")
	for _, c := range tasks {
		if c.Status != "MISS" {
			t.Fatalf("task cache %+v, want a miss", c)
		}
	}
}

// Turborepo's remote cache: the second run from a fresh --cache-dir is
// FULL TURBO with both tasks REMOTE hits, counted by the edge.
func TestTurboRemoteCache(t *testing.T) {
	t.Parallel()
	turbo := harness.RequireTool(t, "turbo")
	n := harness.StartNode(t, nil, nil)
	dir := harness.CopyFixture(t, "turbo")

	out, tasks := turboRun(t, turbo, dir, n)
	turboMustMiss(t, out, tasks)
	first := scrape(t, n, "")
	if first.hitsOf("turborepo") != 0 || first.missesOf("turborepo") < turboTasks {
		t.Fatalf("after a cold run: turborepo hits %v, misses %v", first.hitsOf("turborepo"), first.missesOf("turborepo"))
	}

	out, tasks = turboRun(t, turbo, dir, n)
	turboMustHit(t, dir, out, tasks)
	second := scrape(t, n, "")
	if got := second.hitsOf("turborepo") - first.hitsOf("turborepo"); got != turboTasks {
		t.Fatalf(`hits{build_system="turborepo"} rose by %v, want %d`, got, turboTasks)
	}
}

// With remoteCache.signature on, the edge keeps each artifact's
// X-Artifact-Tag and returns it, so turbo verifies and uses the artifact; a
// run with another key rejects the same artifacts and rebuilds.
func TestTurboSignedRemoteCache(t *testing.T) {
	t.Parallel()
	turbo := harness.RequireTool(t, "turbo")
	n := harness.StartNode(t, nil, nil)
	dir := harness.CopyFixture(t, "turbo")
	enableTurboSignatures(t, dir)
	key := "TURBO_REMOTE_CACHE_SIGNATURE_KEY=e2e-signing-key-one"

	out, tasks := turboRun(t, turbo, dir, n, key)
	turboMustMiss(t, out, tasks)
	first := scrape(t, n, "")

	out, tasks = turboRun(t, turbo, dir, n, key)
	turboMustHit(t, dir, out, tasks)
	second := scrape(t, n, "")
	if got := second.hitsOf("turborepo") - first.hitsOf("turborepo"); got != turboTasks {
		t.Fatalf(`hits{build_system="turborepo"} rose by %v, want %d`, got, turboTasks)
	}

	// The node serves the artifacts, but their tags do not verify under
	// another key: proof that turbo checked the tag the node returned.
	out, tasks = turboRun(t, turbo, dir, n, "TURBO_REMOTE_CACHE_SIGNATURE_KEY=e2e-signing-key-two")
	turboMustMiss(t, out, tasks)
}

// enableTurboSignatures turns on "remoteCache": {"signature": true} in the
// copied fixture's turbo.json.
func enableTurboSignatures(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, "turbo.json")
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	decodeJSON(t, body, &cfg)
	cfg["remoteCache"] = map[string]any{"signature": true}
	body, err = json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
}
