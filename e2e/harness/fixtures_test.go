package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// These tests keep the fixtures honest with the real tools: each builds
// offline with no remote cache, and a second build from clean outputs is
// served by the tool's own local cache, which proves the tasks are cacheable
// and deterministic (a remote cache could never hit otherwise). The
// remote-cache e2e tests build on exactly these commands.

func mustContain(t *testing.T, out string, markers ...string) {
	t.Helper()
	for _, m := range markers {
		if !strings.Contains(out, m) {
			t.Fatalf("output lacks %q:\n%s", m, out)
		}
	}
}

func TestFixtureGradleIsCacheable(t *testing.T) {
	gradle := RequireTool(t, "gradle")
	dir := CopyFixture(t, "gradle")
	env := append(GradleEnv(t), "FABRIK_GRADLE_LOCAL_CACHE_DIR="+filepath.Join(t.TempDir(), "local-cache"))

	out, err := Run(t, dir, env, gradle, GradleArgs()...)
	if err != nil {
		t.Fatalf("first build: %v\n%s", err, out)
	}
	mustContain(t, out, "BUILD SUCCESSFUL", "3 actionable tasks: 3 executed")
	big, err := os.Stat(filepath.Join(dir, "build", "concat", "all.txt"))
	if err != nil || big.Size() < 100_000 {
		t.Fatalf("concat output: %v, %v", big, err)
	}

	if err := os.RemoveAll(filepath.Join(dir, "build")); err != nil {
		t.Fatal(err)
	}
	out, err = Run(t, dir, env, gradle, GradleArgs()...)
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	mustContain(t, out, ":compileJava FROM-CACHE", ":concat FROM-CACHE", "2 from cache")
}

func TestFixtureBazelIsCacheable(t *testing.T) {
	dir := CopyFixture(t, "bazel")
	b := NewBazel(t, dir)
	diskCache := "--disk_cache=" + filepath.Join(t.TempDir(), "disk-cache")

	out, err := b.Run("build", diskCache, "//...")
	if err != nil {
		t.Fatalf("first build: %v\n%s", err, out)
	}
	mustContain(t, out, "Build completed successfully", "4 local")
	big, err := os.Stat(filepath.Join(dir, "bazel-bin", "big.bin"))
	if err != nil || big.Size() < 5_000_000 {
		t.Fatalf("big.bin: %v, %v", big, err)
	}

	if out, err := b.Run("clean"); err != nil {
		t.Fatalf("clean: %v\n%s", err, out)
	}
	out, err = b.Run("build", diskCache, "//...")
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	// Bazel 4.2.3 counts disk cache hits as "remote cache hit" too.
	mustContain(t, out, "4 remote cache hit")

	if len(processesMentioning(b.OutputBase)) == 0 {
		t.Fatal("no Bazel server found for the output base; the shutdown check below would prove nothing")
	}
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestFixtureNxIsCacheable(t *testing.T) {
	nx := RequireTool(t, "nx")
	dir := CopyFixture(t, "nx")
	LinkNodeModules(t, dir)
	env := NxEnv(filepath.Join(t.TempDir(), "nx-cache"))

	out, err := Run(t, dir, env, nx, "run", "app:build")
	if err != nil {
		t.Fatalf("first build: %v\n%s", err, out)
	}
	mustContain(t, out, "fabrik-e2e-nx build done", "Successfully ran target build")
	if err := os.RemoveAll(filepath.Join(dir, "packages", "app", "dist")); err != nil {
		t.Fatal(err)
	}
	out, err = Run(t, dir, env, nx, "run", "app:build")
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	mustContain(t, out, "[local cache]")
	if _, err := os.Stat(filepath.Join(dir, "packages", "app", "dist", "big.txt")); err != nil {
		t.Fatalf("cache hit did not restore outputs: %v", err)
	}
}

func TestFixtureTurboIsCacheable(t *testing.T) {
	turbo := RequireTool(t, "turbo")
	dir := CopyFixture(t, "turbo")
	args := []string{"run", "build", "--cache-dir=" + filepath.Join(t.TempDir(), "turbo-cache")}

	out, err := Run(t, dir, TurboEnv(), turbo, args...)
	if err != nil {
		t.Fatalf("first build: %v\n%s", err, out)
	}
	mustContain(t, out, "2 successful, 2 total", "0 cached, 2 total")
	for _, p := range []string{"a", "b"} {
		if err := os.RemoveAll(filepath.Join(dir, "packages", p, "dist")); err != nil {
			t.Fatal(err)
		}
	}
	out, err = Run(t, dir, TurboEnv(), turbo, args...)
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	mustContain(t, out, "2 cached, 2 total", "FULL TURBO")
	if _, err := os.Stat(filepath.Join(dir, "packages", "b", "dist", "index.js")); err != nil {
		t.Fatalf("cache hit did not restore outputs: %v", err)
	}
}
