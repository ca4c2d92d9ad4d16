package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// daemonFigures reads the activated daemon's /health figures.
func daemonFigures(t *testing.T, sh *tshell) (objects, hits float64) {
	t.Helper()
	e := sh.env()
	d, ok := readDaemonState(t, e["FABRIK_DAEMON"])
	if !ok {
		t.Fatalf("no activated daemon in %s: %v", sh.target, e)
	}
	h := healthOf(t, d.Ports["health"])
	objects, _ = h["objects"].(float64)
	hits, _ = h["hits"].(float64)
	return objects, hits
}

// A real Gradle build in an activated shell, in a project whose
// settings.gradle says nothing about caching: the init script activation
// installed points Gradle at the daemon, and the second build, with clean
// outputs and no local build cache, is FROM-CACHE.
func TestActivatedShellGradleBuildIsFromCache(t *testing.T) {
	harness.RequireTool(t, "gradle")
	w := newShellWorld(t)
	dir := harness.CopyFixture(t, "gradle")
	writeFile(t, filepath.Join(dir, "settings.gradle"), "rootProject.name = 'fabrik-e2e-gradle'\n")
	writeFile(t, filepath.Join(dir, "fabrik.toml"), "[build_tools]\nenabled = [\"gradle\"]\n")
	sh := w.open("bash")
	sh.run("cd "+dir, 60*time.Second)
	initScript := filepath.Join(w.gradleHome, "init.d", "fabrik-build-cache.gradle")
	if _, err := os.Stat(initScript); err != nil {
		t.Fatalf("activation did not install the Gradle init script: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.home, ".gradle")); !os.IsNotExist(err) {
		t.Fatalf("activation touched ~/.gradle although GRADLE_USER_HOME is set (%v)", err)
	}
	build := "gradle --no-daemon --console=plain --stacktrace build"

	out, code := sh.runLogged(build, 5*time.Minute)
	if code != 0 {
		t.Fatalf("first build: exit %d\n%s", code, out)
	}
	mustContain(t, out, "BUILD SUCCESSFUL", "3 actionable tasks: 3 executed")
	if objects, _ := daemonFigures(t, sh); objects < 2 {
		t.Fatalf("the daemon holds %v objects after the first build, want the 2 task outputs", objects)
	}

	// Clean outputs and Gradle's own local cache: a hit can only come from
	// the daemon.
	for _, p := range []string{filepath.Join(dir, "build"), filepath.Join(w.gradleHome, "caches", "build-cache-1")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	out, code = sh.runLogged(build, 5*time.Minute)
	if code != 0 {
		t.Fatalf("second build: exit %d\n%s", code, out)
	}
	mustContain(t, out, ":compileJava FROM-CACHE", ":concat FROM-CACHE", "2 from cache")
	if _, hits := daemonFigures(t, sh); hits < 2 {
		t.Fatalf("the daemon counted %v hits, want the 2 FROM-CACHE tasks", hits)
	}

	// Outside the project the init script does nothing: no cache at all.
	sh.run("cd "+filepath.Dir(dir), 30*time.Second)
	outside := filepath.Join(filepath.Dir(dir), "outside")
	writeFile(t, filepath.Join(outside, "settings.gradle"), "rootProject.name = 'outside'\n")
	writeFile(t, filepath.Join(outside, "build.gradle"), "task hello { doLast { println \"buildCache=${gradle.startParameter.buildCacheEnabled}\" } }\n")
	out, code = sh.runLogged("gradle --no-daemon --console=plain -p "+outside+" hello", 5*time.Minute)
	if code != 0 {
		t.Fatalf("build outside the project: exit %d\n%s", code, out)
	}
	mustContain(t, out, "buildCache=false")
}

// Nx (in zsh) and Turborepo (in fish) in activated shells use the project's
// daemon with nothing but the exported variables: the second run of each,
// from a fresh local cache, is a remote hit counted by the daemon. Both
// projects have the same fabrik.toml content, so they share a daemon, started
// for the Nx project; when that project's directory is removed, the Turborepo
// shell gets a daemon of its own instead of one about to stop.
func TestActivatedShellNxAndTurboHitTheDaemon(t *testing.T) {
	harness.RequireTool(t, "nx")
	harness.RequireTool(t, "turbo")
	w := newShellWorld(t)
	toml := "[build_tools]\nenabled = [\"nx\", \"turborepo\"]\n"

	t.Run("nx in zsh", func(t *testing.T) {
		dir := harness.CopyFixture(t, "nx")
		harness.LinkNodeModules(t, dir)
		writeFile(t, filepath.Join(dir, "fabrik.toml"), toml)
		sh := w.open("zsh")
		sh.run("cd "+dir, 60*time.Second)
		run := func(i int) string {
			t.Helper()
			if err := os.RemoveAll(filepath.Join(dir, "packages", "app", "dist")); err != nil {
				t.Fatal(err)
			}
			env := harness.NxEnv(filepath.Join(w.root, fmt.Sprintf("nx-cache-%d", i)))
			out, code := sh.runLogged("env "+strings.Join(env, " ")+" nx run app:build", 3*time.Minute)
			if code != 0 {
				t.Fatalf("nx run app:build: exit %d\n%s", code, out)
			}
			mustContain(t, out, "Successfully ran target build")
			return out
		}
		out := run(1)
		mustNotContain(t, out, "[remote cache]", "[local cache]")
		_, before := daemonFigures(t, sh)
		out = run(2)
		mustContain(t, out, "[remote cache]")
		if _, after := daemonFigures(t, sh); after-before != 1 {
			t.Fatalf("daemon hits rose by %v over one Nx remote hit", after-before)
		}
	})

	t.Run("turborepo in fish", func(t *testing.T) {
		dir := harness.CopyFixture(t, "turbo")
		writeFile(t, filepath.Join(dir, "fabrik.toml"), toml)
		sh := w.open("fish")
		sh.run("cd "+dir, 60*time.Second)
		runs := filepath.Join(dir, ".turbo", "runs")
		run := func(i int) (string, []turboCache) {
			t.Helper()
			for _, p := range []string{filepath.Join(dir, "packages", "a", "dist"), filepath.Join(dir, "packages", "b", "dist"), runs} {
				if err := os.RemoveAll(p); err != nil {
					t.Fatal(err)
				}
			}
			cacheDir := filepath.Join(w.root, fmt.Sprintf("turbo-cache-%d", i))
			out, code := sh.runLogged("env "+strings.Join(harness.TurboEnv(), " ")+" turbo run build --summarize --cache-dir="+cacheDir, 3*time.Minute)
			if code != 0 {
				t.Fatalf("turbo run build: exit %d\n%s", code, out)
			}
			return out, turboSummary(t, runs)
		}
		out, tasks := run(1)
		turboMustMiss(t, out, tasks)
		_, before := daemonFigures(t, sh)
		out, tasks = run(2)
		turboMustHit(t, dir, out, tasks)
		if _, after := daemonFigures(t, sh); after-before != turboTasks {
			t.Fatalf("daemon hits rose by %v over %d Turborepo remote hits", after-before, turboTasks)
		}
	})
}
