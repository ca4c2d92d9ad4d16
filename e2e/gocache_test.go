package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/e2e/harness"
	"github.com/tuist/fabrik-node/internal/gomodule"
)

// goCompileLine matches a compile invocation in `go build -x` output: the
// compile tool run on a package (`.../pkg/tool/<os_arch>/compile -o ...`).
var goCompileLine = regexp.MustCompile(`(?m)/pkg/tool/[^/\s]+/compile\s`)

// goBuild runs the real go command in the module at dir with GOCACHEPROG set
// to `fabrik-node gocacheprog --url url --dir helperDir -v`, and a fresh
// GOCACHE: with GOCACHEPROG the go command keeps build outputs only through
// the helper (GOCACHE still holds the fuzz cache), and a fresh one proves
// that nothing else could have served them. The module must stay at the same
// path across runs: action IDs include the package directory.
func goBuild(t *testing.T, dir, url, helperDir string, extraEnv []string, args ...string) string {
	t.Helper()
	bin := harness.BuildBinary(t)
	env := []string{
		"GOCACHE=" + t.TempDir(),
		fmt.Sprintf("GOCACHEPROG=%s gocacheprog --url %s --dir %s -v", bin, url, helperDir),
		// Hermetic: no user go env, no network, no toolchain switch, and
		// the same settings every run (they are part of action IDs).
		"GOENV=off", "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local", "GOPROXY=off", "CGO_ENABLED=0",
		"FABRIK_TOKEN=",
	}
	env = append(env, extraEnv...)
	out, err := harness.Run(t, dir, env, "go", args...)
	if err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
	return out
}

// goBuildAndTest builds with -x and tests the module: one helper process per go
// command, both on helperDir. It returns the build's -x output and the test
// output.
func goBuildAndTest(t *testing.T, dir, url, helperDir string) (build, test string) {
	t.Helper()
	build = goBuild(t, dir, url, helperDir, nil, "build", "-x", "./...")
	test = goBuild(t, dir, url, helperDir, nil, "test", "./...")
	return build, test
}

// goMustBeCached checks a build that compiled nothing and tests whose every
// result came from the cache.
func goMustBeCached(t *testing.T, build, test string, packages []string) {
	t.Helper()
	if m := goCompileLine.FindAllString(build, -1); len(m) != 0 {
		t.Fatalf("warm build ran the compiler %d times:\n%s", len(m), build)
	}
	for _, p := range packages {
		if strings.HasSuffix(p, "/cmd/app") {
			continue // no test files
		}
		if !regexp.MustCompile(`(?m)^ok\s+` + regexp.QuoteMeta(p) + `\s+\(cached\)`).MatchString(test) {
			t.Fatalf("test of %s not served from the cache:\n%s", p, test)
		}
	}
}

// The go command's build cache on the edge, end to end with the real go
// command: a cold build and test through edge A with an empty helper
// directory fills the edge; the same module with another empty helper
// directory (and an empty GOCACHE) then compiles nothing and every test
// result is cached, served by edge A; and a fresh edge B sharing A's
// regional serves the same through the regional.
func TestGoCacheProg(t *testing.T) {
	t.Parallel()
	regional := harness.StartNode(t, []string{"--role", "regional"}, nil)
	upstream := harness.NodeOptions{ExtraTOML: fmt.Sprintf("[[upstream]]\nurl = %q\n", "grpc://"+regional.FabrikAddr)}
	edgeA := harness.StartNodeWith(t, upstream)

	dir := t.TempDir()
	pkgs, err := gomodule.Write(dir, gomodule.Options{Packages: 6, Tests: true, Main: true, Std: true})
	if err != nil {
		t.Fatal(err)
	}

	build, test := goBuildAndTest(t, dir, edgeA.HTTPURL(), t.TempDir())
	if n := len(goCompileLine.FindAllString(build, -1)); n < len(pkgs) {
		t.Fatalf("cold build ran the compiler %d times, want >= %d (the module's packages):\n%s", n, len(pkgs), build)
	}
	mustNotContain(t, test, "(cached)")
	cold := scrape(t, edgeA, "")
	if cold[`fabrik_bandwidth_bytes_total{direction="upload"}`] <= 0 {
		t.Fatalf("cold build stored nothing on edge A:\n%s\n%s", build, test)
	}

	build, test = goBuildAndTest(t, dir, edgeA.HTTPURL(), t.TempDir())
	goMustBeCached(t, build, test, pkgs)
	warm := scrape(t, edgeA, "")
	if got := warm.hitsOf("gocache") - cold.hitsOf("gocache"); got < float64(len(pkgs)) {
		t.Fatalf(`edge A: hits{build_system="gocache"} rose by %v, want >= %d`, got, len(pkgs))
	}

	// Write-through is asynchronous: wait until the regional holds what
	// edge A stored.
	var objects float64
	want := warm["fabrik_cache_objects"]
	if !waitFor(60*time.Second, func() bool {
		objects = scrape(t, regional, "")["fabrik_cache_objects"]
		return objects >= want
	}) {
		t.Fatalf("regional holds %v objects 60s after the builds on edge A, want >= %v", objects, want)
	}
	before := scrape(t, regional, "")
	edgeB := harness.StartNodeWith(t, upstream)
	build, test = goBuildAndTest(t, dir, edgeB.HTTPURL(), t.TempDir())
	goMustBeCached(t, build, test, pkgs)
	if got := scrape(t, edgeB, "").hitsOf("gocache"); got < float64(len(pkgs)) {
		t.Fatalf(`edge B: hits{build_system="gocache"} = %v, want >= %d`, got, len(pkgs))
	}
	if got := scrape(t, regional, "").hits() - before.hits(); got < float64(len(pkgs)) {
		t.Fatalf("regional served %v hits to edge B, want >= %d", got, len(pkgs))
	}
}

// Nothing listening at --url: the build compiles and succeeds as if there
// were no cache at all, and the helper's own directory still serves the
// next build.
func TestGoCacheProgDeadEdge(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()

	// Library packages without the standard library: a cold build compiles
	// only the module, so the case stays cheap.
	dir := t.TempDir()
	pkgs, err := gomodule.Write(dir, gomodule.Options{Packages: 4})
	if err != nil {
		t.Fatal(err)
	}
	helperDir := t.TempDir()
	start := time.Now()
	out := goBuild(t, dir, url, helperDir, nil, "build", "-x", "./...")
	if n := len(goCompileLine.FindAllString(out, -1)); n != len(pkgs) {
		t.Fatalf("build with a dead edge ran the compiler %d times, want %d:\n%s", n, len(pkgs), out)
	}
	mustContain(t, out, "[fabrik] gocacheprog: edge "+url+" not usable")
	if d := time.Since(start); d > 2*time.Minute {
		t.Fatalf("build with a dead edge took %s", d)
	}
	out = goBuild(t, dir, url, helperDir, nil, "build", "-x", "./...")
	if m := goCompileLine.FindAllString(out, -1); len(m) != 0 {
		t.Fatalf("second build with a dead edge and the same helper directory compiled %d packages:\n%s", len(m), out)
	}
}

// Behind [auth], the helper with FABRIK_TOKEN reads and writes; without a
// token the edge refuses it and the build just compiles (no hit is served);
// with a read-only token it reads and its puts are refused.
func TestGoCacheProgAuth(t *testing.T) {
	t.Parallel()
	keys := authtest.New(t)
	token := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
	readOnly := keys.Token(t, authtest.Scopes("cache:read"))
	n := harness.StartNodeWith(t, harness.NodeOptions{
		ExtraTOML: fmt.Sprintf("[auth]\npublic_key_file = %q\n", keys.File()),
	})
	dir := t.TempDir()
	pkgs, err := gomodule.Write(dir, gomodule.Options{Packages: 4})
	if err != nil {
		t.Fatal(err)
	}
	compiles := func(out string) int { return len(goCompileLine.FindAllString(out, -1)) }
	withToken := []string{"FABRIK_TOKEN=" + token}

	if got := compiles(goBuild(t, dir, n.HTTPURL(), t.TempDir(), withToken, "build", "-x", "./...")); got != len(pkgs) {
		t.Fatalf("cold build compiled %d packages, want %d", got, len(pkgs))
	}
	stored := scrape(t, n, token)
	if stored["fabrik_cache_objects"] < float64(len(pkgs)) {
		t.Fatalf("authorised build stored %v objects, want >= %d", stored["fabrik_cache_objects"], len(pkgs))
	}

	out := goBuild(t, dir, n.HTTPURL(), t.TempDir(), nil, "build", "-x", "./...")
	if got := compiles(out); got != len(pkgs) {
		t.Fatalf("build without a token compiled %d packages, want all %d (nothing served):\n%s", got, len(pkgs), out)
	}
	refused := scrape(t, n, token)
	if refused.hits() != stored.hits() {
		t.Fatalf("a helper without a token was served %v hits", refused.hits()-stored.hits())
	}
	if got := refused.sumPrefix(`fabrik_auth_refused_total{reason="unauthenticated"`); got < 1 {
		t.Fatalf("fabrik_auth_refused_total{reason=\"unauthenticated\"} = %v after a build without a token", got)
	}

	if out := goBuild(t, dir, n.HTTPURL(), t.TempDir(), withToken, "build", "-x", "./..."); compiles(out) != 0 {
		t.Fatalf("build with the token compiled %d packages, want 0:\n%s", compiles(out), out)
	}
	served := scrape(t, n, token)
	if got := served.hitsOf("gocache") - refused.hitsOf("gocache"); got < float64(len(pkgs)) {
		t.Fatalf(`hits{build_system="gocache"} rose by %v, want >= %d`, got, len(pkgs))
	}

	// A read-only token reads; its puts (a module change) are refused and
	// the build still succeeds.
	if err := os.WriteFile(filepath.Join(dir, "p000", "extra.go"), []byte("package p000\n\nfunc Extra() int { return 1 }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = goBuild(t, dir, n.HTTPURL(), t.TempDir(), []string{"FABRIK_TOKEN=" + readOnly}, "build", "-x", "./...")
	if compiles(out) == 0 {
		t.Fatalf("a changed package was not compiled:\n%s", out)
	}
	after := scrape(t, n, token)
	if after["fabrik_cache_objects"] != served["fabrik_cache_objects"] {
		t.Fatalf("a read-only token stored %v objects", after["fabrik_cache_objects"]-served["fabrik_cache_objects"])
	}
	if got := after.sumPrefix(`fabrik_auth_refused_total{reason="forbidden"`) - served.sumPrefix(`fabrik_auth_refused_total{reason="forbidden"`); got < 1 {
		t.Fatalf("no put of the read-only helper was refused as forbidden (%v)", got)
	}
}
