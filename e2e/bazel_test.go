package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/e2e/harness"
)

// processesLine is Bazel 4.2.3's summary of how each spawn was run, e.g.
// "INFO: 5 processes: 4 remote cache hit, 1 internal."
var processesLine = regexp.MustCompile(`INFO: (\d+) process(?:es)?: ([^\n]*?)\.?\n`)

// bazelProcesses returns the total of the build's summary line and the count
// per kind ("remote cache hit", "internal", "local", ...).
func bazelProcesses(t *testing.T, out string) (int, map[string]int) {
	t.Helper()
	m := processesLine.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		t.Fatalf("no processes summary in bazel output:\n%s", out)
	}
	last := m[len(m)-1]
	total, _ := strconv.Atoi(last[1])
	kinds := map[string]int{}
	for _, part := range strings.Split(last[2], ",") {
		num, kind, ok := strings.Cut(strings.TrimSpace(part), " ")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			t.Fatalf("unreadable processes summary %q", last[0])
		}
		kinds[kind] += n
	}
	return total, kinds
}

// bazelMustMiss checks that every non-internal action ran locally.
func bazelMustMiss(t *testing.T, out string) {
	t.Helper()
	total, kinds := bazelProcesses(t, out)
	if kinds["remote cache hit"] != 0 || kinds["local"] != total-kinds["internal"] || kinds["local"] == 0 {
		t.Fatalf("want every action run locally, got %d processes %v:\n%s", total, kinds, out)
	}
}

// bazelMustHit checks that every non-internal action was a remote cache hit
// and returns how many there were.
func bazelMustHit(t *testing.T, out string) int {
	t.Helper()
	total, kinds := bazelProcesses(t, out)
	hits := kinds["remote cache hit"]
	if hits == 0 || hits != total-kinds["internal"] {
		t.Fatalf("want every action a remote cache hit, got %d processes %v:\n%s", total, kinds, out)
	}
	return hits
}

// bazelOutputsRestored checks the 5 MB output, which only ByteStream can
// carry, came back.
func bazelOutputsRestored(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, "bazel-bin", "big.bin"))
	if err != nil || fi.Size() < 5_000_000 {
		t.Fatalf("big.bin not restored: %v, %v", fi, err)
	}
}

// Bazel over REAPI: an edge started by the harness serves every action of a
// rebuild after `bazel clean`, and so does the `fabrik-node bazel` wrapper
// with its own one-shot edge. Both share one Bazel server (one JVM start),
// which harness.NewBazel shuts down, and checks gone, when the test ends.
func TestBazelRemoteCache(t *testing.T) {
	t.Parallel()
	dir := harness.CopyFixture(t, "bazel")
	b := harness.NewBazel(t, dir)

	t.Run("edge", func(t *testing.T) {
		n := harness.StartNode(t, nil, nil)
		remote := "--remote_cache=grpc://" + n.GRPCAddr

		out, err := b.Run("build", remote, "//...")
		if err != nil {
			t.Fatalf("first build: %v\n%s", err, out)
		}
		bazelMustMiss(t, out)
		first := scrape(t, n, "")
		if first.hitsOf("bazel") != 0 || first.missesOf("bazel") == 0 {
			t.Fatalf("after a cold build: bazel hits %v, misses %v", first.hitsOf("bazel"), first.missesOf("bazel"))
		}

		if out, err := b.Run("clean"); err != nil {
			t.Fatalf("clean: %v\n%s", err, out)
		}
		out, err = b.Run("build", remote, "//...")
		if err != nil {
			t.Fatalf("second build: %v\n%s", err, out)
		}
		actions := bazelMustHit(t, out)
		bazelOutputsRestored(t, dir)
		second := scrape(t, n, "")
		// Each action is one ActionCache hit; its outputs may add CAS reads.
		if got := second.hitsOf("bazel") - first.hitsOf("bazel"); got < float64(actions) {
			t.Fatalf(`hits{build_system="bazel"} rose by %v for %d remote cache hits`, got, actions)
		}
		if second.hits() < float64(actions) {
			t.Fatalf("fabrik_cache_hits_total %v < %d", second.hits(), actions)
		}
	})

	t.Run("wrapper", func(t *testing.T) {
		bin := harness.BuildBinary(t)
		cfg := filepath.Join(t.TempDir(), "fabrik.toml")
		// An explicit, empty config keeps a developer's own config out.
		if err := os.WriteFile(cfg, []byte("# e2e: defaults only\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cacheDir := filepath.Join(t.TempDir(), "wrapper-cache")
		// The same startup options as harness.Bazel, so its server is reused
		// and its cleanup shuts it down.
		args := []string{"bazel", "--config", cfg, "--config-cache-dir", cacheDir, "--",
			"--nohome_rc", "--output_base=" + b.OutputBase, "--max_idle_secs=120", "build", "//..."}
		build := func() string {
			t.Helper()
			out, err := harness.Run(t, dir, nil, bin, args...)
			if err != nil {
				t.Fatalf("fabrik-node bazel: %v\n%s", err, out)
			}
			mustContain(t, out, "[fabrik] cache for bazel on grpc://127.0.0.1:", "Build completed successfully")
			return out
		}

		if out, err := b.Run("clean"); err != nil {
			t.Fatalf("clean: %v\n%s", err, out)
		}
		bazelMustMiss(t, build())
		entries, err := os.ReadDir(cacheDir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("wrapper stored nothing in --config-cache-dir %s: %v", cacheDir, err)
		}
		if out, err := b.Run("clean"); err != nil {
			t.Fatalf("clean: %v\n%s", err, out)
		}
		bazelMustHit(t, build())
		bazelOutputsRestored(t, dir)
	})

	// With [auth] keys the wrapper's edge demands a token, and Bazel gets
	// it through the --remote_header the wrapper injects: without it Bazel
	// could not even query the capabilities and the build would fail.
	t.Run("wrapper with auth", func(t *testing.T) {
		bin := harness.BuildBinary(t)
		keys := authtest.New(t)
		token := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
		cfg := filepath.Join(t.TempDir(), "fabrik.toml")
		toml := fmt.Sprintf("[auth]\npublic_key_file = %q\ntoken = %q\n", keys.File(), token)
		if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		cacheDir := filepath.Join(t.TempDir(), "auth-cache")
		args := []string{"bazel", "--config", cfg, "--config-cache-dir", cacheDir, "--",
			"--nohome_rc", "--output_base=" + b.OutputBase, "--max_idle_secs=120", "build", "//..."}
		miss := func(t *testing.T, out string) int { bazelMustMiss(t, out); return 0 }
		for i, check := range []func(*testing.T, string) int{miss, bazelMustHit} {
			if out, err := b.Run("clean"); err != nil {
				t.Fatalf("clean: %v\n%s", err, out)
			}
			out, err := harness.Run(t, dir, nil, bin, args...)
			if err != nil {
				t.Fatalf("build %d through an authenticated wrapper: %v\n%s", i+1, err, out)
			}
			check(t, out)
		}
	})
}
