package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// Nx's self-hosted remote cache: a run with a fresh local cache directory
// and no outputs is restored from the edge ("[remote cache]"), and the edge
// counts an Nx hit.
func TestNxRemoteCache(t *testing.T) {
	t.Parallel()
	nx := harness.RequireTool(t, "nx")
	n := harness.StartNode(t, nil, nil)
	dir := harness.CopyFixture(t, "nx")
	harness.LinkNodeModules(t, dir)
	dist := filepath.Join(dir, "packages", "app", "dist")

	run := func() string {
		t.Helper()
		if err := os.RemoveAll(dist); err != nil {
			t.Fatal(err)
		}
		// A fresh NX_CACHE_DIRECTORY per run: a hit can only be remote.
		env := append(harness.NxEnv(filepath.Join(t.TempDir(), "nx-cache")),
			"NX_SELF_HOSTED_REMOTE_CACHE_SERVER="+n.HTTPURL(),
			// The edge runs without [auth]; Nx sends whatever it is given.
			"NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN=e2e")
		out, err := harness.Run(t, dir, env, nx, "run", "app:build")
		if err != nil {
			t.Fatalf("nx run app:build: %v\n%s", err, out)
		}
		mustContain(t, out, "Successfully ran target build")
		return out
	}

	out := run()
	mustContain(t, out, "fabrik-e2e-nx build done")
	mustNotContain(t, out, "[remote cache]", "[local cache]")
	first := scrape(t, n, "")
	if first.hitsOf("nx") != 0 || first.missesOf("nx") != 1 {
		t.Fatalf("after a cold run: nx hits %v, misses %v; want 0 and 1", first.hitsOf("nx"), first.missesOf("nx"))
	}

	out = run()
	mustContain(t, out, "[remote cache]", "from the cache instead of running the command for 1 out of 1 tasks")
	if _, err := os.Stat(filepath.Join(dist, "big.txt")); err != nil {
		t.Fatalf("remote hit did not restore outputs: %v", err)
	}
	second := scrape(t, n, "")
	if got := second.hitsOf("nx") - first.hitsOf("nx"); got != 1 {
		t.Fatalf(`hits{build_system="nx"} rose by %v over one remote hit`, got)
	}
	if second.hits() != 1 {
		t.Fatalf("fabrik_cache_hits_total = %v, want 1", second.hits())
	}
}
