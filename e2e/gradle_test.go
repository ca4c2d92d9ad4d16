package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/e2e/harness"
)

// gradleCacheable is how many tasks of the fixture use the build cache
// (compileJava and concat); a fully served build shows each FROM-CACHE.
const gradleCacheable = 2

// gradleBuild builds the fixture at dir against url (with a Basic password
// when password is set) after removing its outputs, so every cacheable task
// either runs or is loaded from the remote cache: the fixture has no local
// cache. It fails the test when Gradle fails.
func gradleBuild(t *testing.T, dir, url, password string) string {
	t.Helper()
	gradle := harness.RequireTool(t, "gradle")
	if err := os.RemoveAll(filepath.Join(dir, "build")); err != nil {
		t.Fatalf("remove gradle outputs: %v", err)
	}
	env := append(harness.GradleEnv(t), "FABRIK_GRADLE_URL="+url)
	if password != "" {
		env = append(env, "FABRIK_GRADLE_PASSWORD="+password)
	}
	out, err := harness.Run(t, dir, env, gradle, harness.GradleArgs()...)
	if err != nil {
		t.Fatalf("gradle build: %v\n%s", err, out)
	}
	mustContain(t, out, "BUILD SUCCESSFUL")
	return out
}

// gradleMustMiss checks a build that ran every cacheable task itself.
func gradleMustMiss(t *testing.T, out string) {
	t.Helper()
	mustContain(t, out, "3 actionable tasks: 3 executed")
	mustNotContain(t, out, "FROM-CACHE")
}

// gradleMustHit checks a build that loaded every cacheable task from the
// remote cache, and that the outputs really came back.
func gradleMustHit(t *testing.T, dir, out string) {
	t.Helper()
	mustContain(t, out, ":compileJava FROM-CACHE", ":concat FROM-CACHE", "2 from cache")
	mustNotContain(t, out, "remote build cache was disabled")
	if got := countLines(out, "FROM-CACHE"); got != gradleCacheable {
		t.Fatalf("%d tasks FROM-CACHE, want %d:\n%s", got, gradleCacheable, out)
	}
	fi, err := os.Stat(filepath.Join(dir, "build", "concat", "all.txt"))
	if err != nil || fi.Size() < 100_000 {
		t.Fatalf("concat output not restored from the cache: %v, %v", fi, err)
	}
}

// A second Gradle build from clean outputs is served by the edge, the edge
// counts exactly the hits Gradle reports, and the stats API agrees with
// /metrics.
func TestGradleRemoteCache(t *testing.T) {
	t.Parallel()
	harness.RequireTool(t, "gradle")
	n := harness.StartNode(t, nil, nil)
	url := n.HTTPURL() + "/cache/"
	dir := harness.CopyFixture(t, "gradle")

	out := gradleBuild(t, dir, url, "")
	gradleMustMiss(t, out)
	first := scrape(t, n, "")
	if first.hits() != 0 || first.missesOf("gradle") < gradleCacheable {
		t.Fatalf("after a cold build: hits %v, gradle misses %v; want 0 and >= %d", first.hits(), first.missesOf("gradle"), gradleCacheable)
	}
	if first[`fabrik_bandwidth_bytes_total{direction="upload"}`] <= 0 {
		t.Fatalf("cold build stored nothing: upload bytes %v", first[`fabrik_bandwidth_bytes_total{direction="upload"}`])
	}

	out = gradleBuild(t, dir, url, "")
	gradleMustHit(t, dir, out)
	second := scrape(t, n, "")
	if got := second.hits() - first.hits(); got != gradleCacheable {
		t.Fatalf("fabrik_cache_hits_total rose by %v over a build with %d FROM-CACHE tasks", got, gradleCacheable)
	}
	if got := second.hitsOf("gradle") - first.hitsOf("gradle"); got != gradleCacheable {
		t.Fatalf(`hits{build_system="gradle"} rose by %v, want %d`, got, gradleCacheable)
	}
	if second[`fabrik_bandwidth_bytes_total{direction="download"}`] <= 0 {
		t.Fatal("hits served no bytes: download counter is zero")
	}

	t.Run("stats agree with metrics", func(t *testing.T) {
		status, body := apiDo(t, n, "", "/api/v1/stats")
		if status != http.StatusOK {
			t.Fatalf("GET /api/v1/stats: status %d: %s", status, body)
		}
		var st stats
		decodeJSON(t, body, &st)
		m := scrape(t, n, "")
		checks := []struct {
			name        string
			stats, prom float64
		}{
			{"hits", float64(st.Performance.CacheHits), m.hits()},
			{"misses", float64(st.Performance.CacheMisses), m.misses()},
			{"upload bytes", float64(st.Bandwidth.UploadBytesTotal), m[`fabrik_bandwidth_bytes_total{direction="upload"}`]},
			{"download bytes", float64(st.Bandwidth.DownloadBytesTotal), m[`fabrik_bandwidth_bytes_total{direction="download"}`]},
			{"objects", float64(st.Cache.TotalObjects), m["fabrik_cache_objects"]},
			{"size bytes", float64(st.Cache.TotalSizeBytes), m["fabrik_cache_size_bytes"]},
		}
		for _, c := range checks {
			if c.stats != c.prom || c.prom <= 0 {
				t.Errorf("%s: stats %v, metrics %v (want equal and positive)", c.name, c.stats, c.prom)
			}
		}
		if t.Failed() {
			t.Logf("stats: %s", body)
		}
	})
}

// Behind [auth], Gradle with a token is served from the cache; Gradle
// without one still builds (the cache is skipped) while the node refuses
// it with 401, logs the refusal and counts it.
func TestGradleAuth(t *testing.T) {
	t.Parallel()
	harness.RequireTool(t, "gradle")
	keys := authtest.New(t)
	token := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
	n := harness.StartNodeWith(t, harness.NodeOptions{
		ExtraTOML: fmt.Sprintf("[auth]\npublic_key_file = %q\n", keys.File()),
	})
	url := n.HTTPURL() + "/cache/"
	dir := harness.CopyFixture(t, "gradle")

	// The API port is guarded too.
	apiGet(t, n, "", "/metrics", http.StatusUnauthorized)

	gradleMustMiss(t, gradleBuild(t, dir, url, token))
	stored := scrape(t, n, token)
	if stored["fabrik_cache_objects"] < gradleCacheable {
		t.Fatalf("authorised build stored %v objects, want >= %d", stored["fabrik_cache_objects"], gradleCacheable)
	}

	// Without credentials the artifacts just stored must not be served.
	out := gradleBuild(t, dir, url, "")
	gradleMustMiss(t, out)
	mustContain(t, out, "401")
	refused := scrape(t, n, token)
	if got := refused.sumPrefix(`fabrik_auth_refused_total{reason="unauthenticated"`); got < 1 {
		t.Fatalf("fabrik_auth_refused_total{reason=\"unauthenticated\"} = %v after an anonymous build", got)
	}
	if refused.hits() != stored.hits() {
		t.Fatalf("anonymous build was served %v hits", refused.hits()-stored.hits())
	}
	if !logHasRefusal(n.Logs(), "/cache/") {
		t.Fatalf("node log shows no 401 refusal of /cache/:\n%s", n.Logs())
	}

	out = gradleBuild(t, dir, url, token)
	gradleMustHit(t, dir, out)
	served := scrape(t, n, token)
	if got := served.hitsOf("gradle") - refused.hitsOf("gradle"); got != gradleCacheable {
		t.Fatalf(`hits{build_system="gradle"} rose by %v, want %d`, got, gradleCacheable)
	}
}

// logHasRefusal reports whether the node logged a 401 refusal of a request
// under path (auth logs "auth: request refused status=401 ... path=...").
func logHasRefusal(log, path string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "request refused") && strings.Contains(l, "status=401") && strings.Contains(l, "path="+path) {
			return true
		}
	}
	return false
}
