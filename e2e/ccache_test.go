package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/e2e/harness"
)

// ccacheUnits is the number of C files the generated project compiles.
const ccacheUnits = 12

// ccacheProject writes a small C project: ccacheUnits translation units
// (main.c and eleven others) whose functions main sums and prints. salt is
// a string in every file's code (a comment would vanish in preprocessing),
// so two projects with different salts share no cache key.
func ccacheProject(t *testing.T, salt string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var decls, calls strings.Builder
	for i := 1; i < ccacheUnits; i++ {
		write(fmt.Sprintf("unit%02d.c", i), fmt.Sprintf(
			"const char *unit%02d_salt = %q;\nstatic int table[] = {%d, %d, %d};\nint unit%02d(int x) { return x * table[x %% 3] + %d; }\n",
			i, salt, i, i*2, i*3, i, i))
		fmt.Fprintf(&decls, "int unit%02d(int);\n", i)
		fmt.Fprintf(&calls, "\tsum += unit%02d(%d);\n", i, i)
	}
	write("main.c", fmt.Sprintf("const char *main_salt = %q;\n#include <stdio.h>\n%sint main(void) {\n\tint sum = 0;\n%s\tprintf(\"sum=%%d\\n\", sum);\n\treturn 0;\n}\n",
		salt, decls.String(), calls.String()))
	return dir
}

// ccacheStats is one `ccache --print-stats`: counter name to value.
type ccacheStats map[string]int

// ccacheBuild compiles the project in dir with ccache against remote (a
// CCACHE_REMOTE_STORAGE value) and a fresh, empty CCACHE_DIR, links and runs
// the program, and returns this build's ccache counters. A build that fails
// fails the test: the cache must never break a build.
func ccacheBuild(t *testing.T, dir, remote string) ccacheStats {
	t.Helper()
	return ccacheBuildIn(t, dir, t.TempDir(), remote)
}

// ccacheBuildIn is ccacheBuild with the local cache in home (kept between
// builds that share it; its counters are zeroed first) and extra
// environment. remote "" builds without remote storage.
func ccacheBuildIn(t *testing.T, dir, home, remote string, extraEnv ...string) ccacheStats {
	t.Helper()
	harness.RequireTool(t, "ccache")
	harness.RequireTool(t, "gcc")
	conf := filepath.Join(home, "ccache.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := append([]string{
		"CCACHE_DIR=" + filepath.Join(home, "ccache"),
		// No system or user ccache.conf: only what the test sets.
		"CCACHE_CONFIGPATH=" + conf,
		"CCACHE_REMOTE_STORAGE=" + remote,
		"CCACHE_LOGFILE=" + filepath.Join(home, "ccache.log"),
	}, extraEnv...)
	if out, err := harness.Run(t, dir, env, "ccache", "--zero-stats"); err != nil {
		t.Fatalf("ccache --zero-stats: %v\n%s", err, out)
	}
	script := `set -e
rm -f *.o app
for f in *.c; do ccache gcc -O1 -c "$f" -o "${f%.c}.o"; done
gcc -o app *.o
./app`
	out, err := harness.Run(t, dir, env, "sh", "-c", script)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(home, "ccache.log"))
		t.Fatalf("build with CCACHE_REMOTE_STORAGE=%s failed: %v\n%s\nccache log:\n%s", remote, err, out, log)
	}
	mustContain(t, out, "sum=")
	raw, err := harness.Run(t, dir, env, "ccache", "--print-stats")
	if err != nil {
		t.Fatalf("ccache --print-stats: %v\n%s", err, raw)
	}
	stats := ccacheStats{}
	for _, line := range strings.Split(raw, "\n") {
		name, value, ok := strings.Cut(line, "\t")
		if n, err := strconv.Atoi(strings.TrimSpace(value)); ok && err == nil {
			stats[name] = n
		}
	}
	if len(stats) == 0 {
		t.Fatalf("ccache --print-stats printed no counters:\n%s", raw)
	}
	return stats
}

// mustMissRemote: every unit missed locally and remotely and was stored.
func (s ccacheStats) mustMissRemote(t *testing.T) {
	t.Helper()
	if s["remote_storage_miss"] != ccacheUnits || s["remote_storage_hit"] != 0 || s["remote_storage_error"] != 0 {
		t.Fatalf("first build: remote hit %d, miss %d, error %d; want 0, %d, 0 (%v)",
			s["remote_storage_hit"], s["remote_storage_miss"], s["remote_storage_error"], ccacheUnits, s)
	}
	// Two entries per compilation: the manifest and the result.
	if s["remote_storage_write"] != 2*ccacheUnits {
		t.Fatalf("first build wrote %d remote entries, want %d (%v)", s["remote_storage_write"], 2*ccacheUnits, s)
	}
}

// mustHitRemote: every unit was a remote hit (the local cache was empty).
func (s ccacheStats) mustHitRemote(t *testing.T) {
	t.Helper()
	if s["remote_storage_hit"] != ccacheUnits || s["remote_storage_miss"] != 0 || s["remote_storage_error"] != 0 || s["local_storage_hit"] != 0 {
		t.Fatalf("second build: remote hit %d, miss %d, error %d, local hit %d; want %d, 0, 0, 0 (%v)",
			s["remote_storage_hit"], s["remote_storage_miss"], s["remote_storage_error"], s["local_storage_hit"], ccacheUnits, s)
	}
}

// The real ccache, each of its three layouts: a build with an empty local
// cache stores every unit on the edge; a second build with another empty
// local cache is served every unit from the edge (100% remote hits), which
// the edge's own counters confirm.
func TestCcacheRemoteHits(t *testing.T) {
	t.Parallel()
	n := harness.StartNode(t, nil, nil)
	for _, layout := range []string{"subdirs", "flat", "bazel"} {
		t.Run(layout, func(t *testing.T) {
			dir := ccacheProject(t, "layout "+layout)
			remote := n.HTTPURL() + "/ccache|layout=" + layout
			before := scrape(t, n, "")
			ccacheBuild(t, dir, remote).mustMissRemote(t)
			stored := scrape(t, n, "")
			if got := stored["fabrik_cache_objects"] - before["fabrik_cache_objects"]; got < ccacheUnits {
				t.Fatalf("edge stored %v objects, want >= %d", got, ccacheUnits)
			}
			ccacheBuild(t, dir, remote).mustHitRemote(t)
			served := scrape(t, n, "")
			// Each remote hit is two GETs: the manifest, then the result.
			if got := served.hitsOf("ccache") - stored.hitsOf("ccache"); got != 2*ccacheUnits {
				t.Fatalf(`hits{build_system="ccache"} rose by %v, want %d`, got, 2*ccacheUnits)
			}
		})
	}
}

// reshare: a machine whose local cache already holds the build shares it
// with the edge (ccache HEADs each entry, a 404 makes it PUT), so a fresh
// machine is then served every unit remotely; resharing again finds every
// entry with HEAD (200) and uploads nothing.
func TestCcacheReshare(t *testing.T) {
	t.Parallel()
	n := harness.StartNode(t, nil, nil)
	dir := ccacheProject(t, "reshare")
	home := t.TempDir()
	ccacheBuildIn(t, dir, home, "")
	remote := n.HTTPURL() + "/ccache"
	s := ccacheBuildIn(t, dir, home, remote, "CCACHE_RESHARE=1")
	if s["local_storage_hit"] != ccacheUnits || s["remote_storage_write"] != 2*ccacheUnits {
		t.Fatalf("reshare: local hit %d, remote writes %d; want %d, %d (%v)",
			s["local_storage_hit"], s["remote_storage_write"], ccacheUnits, 2*ccacheUnits, s)
	}
	// ccache counts remote_storage_write even when its HEAD found the
	// entry, so the edge's own request counters tell what happened.
	const heads, puts = `fabrik_request_duration_seconds_count{build_system="ccache",op="head"}`,
		`fabrik_request_duration_seconds_count{build_system="ccache",op="put"}`
	before := scrape(t, n, "")
	ccacheBuildIn(t, dir, home, remote, "CCACHE_RESHARE=1")
	after := scrape(t, n, "")
	if got := after[heads] - before[heads]; got != 2*ccacheUnits {
		t.Fatalf("second reshare sent %v HEADs, want %d", got, 2*ccacheUnits)
	}
	if got := after[puts] - before[puts]; got != 0 {
		t.Fatalf("second reshare PUT %v entries the edge already held", got)
	}
	ccacheBuild(t, dir, remote).mustHitRemote(t)
}

// Edge A writes through to a regional; a fresh edge B with the same
// regional upstream serves the same build's hits out of the regional.
func TestCcacheRegionalChain(t *testing.T) {
	t.Parallel()
	regional := harness.StartNode(t, []string{"--role", "regional"}, nil)
	upstream := harness.NodeOptions{
		ExtraTOML: fmt.Sprintf("[[upstream]]\nurl = %q\n", "grpc://"+regional.FabrikAddr),
	}
	edgeA := harness.StartNodeWith(t, upstream)
	dir := ccacheProject(t, "regional")
	ccacheBuild(t, dir, edgeA.HTTPURL()+"/ccache").mustMissRemote(t)

	var objects float64
	if !waitFor(30*time.Second, func() bool {
		objects = scrape(t, regional, "")["fabrik_cache_objects"]
		return objects >= 2*ccacheUnits
	}) {
		t.Fatalf("regional holds %v objects 30s after the build on edge A, want >= %d\nedge A log:\n%s",
			objects, 2*ccacheUnits, edgeA.Logs())
	}
	edgeB := harness.StartNodeWith(t, upstream)
	if got := scrape(t, edgeB, "")["fabrik_cache_objects"]; got != 0 {
		t.Fatalf("edge B starts with %v objects; the test needs an empty one", got)
	}
	ccacheBuild(t, dir, edgeB.HTTPURL()+"/ccache").mustHitRemote(t)
	if got := scrape(t, edgeB, "").hitsOf("ccache"); got != 2*ccacheUnits {
		t.Fatalf(`edge B: hits{build_system="ccache"} = %v, want %d`, got, 2*ccacheUnits)
	}
}

// An edge that is not there: ccache compiles everything itself and the
// build succeeds, counting remote errors rather than failing.
func TestCcacheDeadEdge(t *testing.T) {
	t.Parallel()
	dead := fmt.Sprintf("http://127.0.0.1:%d/ccache", harness.FreePort(t))
	s := ccacheBuild(t, ccacheProject(t, "dead edge"), dead)
	if s["remote_storage_hit"] != 0 || s["remote_storage_error"] == 0 {
		t.Fatalf("dead edge: remote hit %d, error %d; want 0 and some errors (%v)", s["remote_storage_hit"], s["remote_storage_error"], s)
	}
}

// Behind [auth]: the token as the Basic password in the URL
// (http://user:TOKEN@host/ccache) stores and is served; so does
// |bearer-token=TOKEN; a read-only token is served what others stored but
// stores nothing (ccache counts the 403s and the build still succeeds); no
// token is refused.
func TestCcacheAuth(t *testing.T) {
	t.Parallel()
	keys := authtest.New(t)
	rw := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
	ro := keys.Token(t, authtest.Scopes("cache:read"))
	n := harness.StartNodeWith(t, harness.NodeOptions{
		ExtraTOML: fmt.Sprintf("[auth]\npublic_key_file = %q\n", keys.File()),
	})
	withUser := func(tok string) string {
		return "http://ccache:" + tok + "@" + n.HTTPAddr + "/ccache"
	}

	dir := ccacheProject(t, "auth basic")
	ccacheBuild(t, dir, withUser(rw)).mustMissRemote(t)
	ccacheBuild(t, dir, withUser(rw)).mustHitRemote(t)
	ccacheBuild(t, dir, withUser(ro)).mustHitRemote(t)
	ccacheBuild(t, dir, n.HTTPURL()+"/ccache|bearer-token="+ro).mustHitRemote(t)

	// No token: every read is refused (a miss to ccache), nothing served.
	anon := ccacheBuild(t, dir, n.HTTPURL()+"/ccache")
	if anon["remote_storage_hit"] != 0 {
		t.Fatalf("anonymous build was served %d remote hits", anon["remote_storage_hit"])
	}

	dir = ccacheProject(t, "auth bearer")
	ccacheBuild(t, dir, n.HTTPURL()+"/ccache|bearer-token="+rw).mustMissRemote(t)
	ccacheBuild(t, dir, n.HTTPURL()+"/ccache|bearer-token="+rw).mustHitRemote(t)

	// A read-only token on a new project: reads miss, writes are refused.
	before := scrape(t, n, rw)["fabrik_cache_objects"]
	s := ccacheBuild(t, ccacheProject(t, "auth read-only"), withUser(ro))
	if s["remote_storage_hit"] != 0 || s["remote_storage_error"] == 0 {
		t.Fatalf("read-only build: remote hit %d, error %d; want 0 and refused writes (%v)", s["remote_storage_hit"], s["remote_storage_error"], s)
	}
	if after := scrape(t, n, rw)["fabrik_cache_objects"]; after != before {
		t.Fatalf("a read-only token stored %v objects", after-before)
	}
}
