package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The helpers below hold what each real client needs to run isolated,
// offline and quietly; e2e/testdata/CLIENTS.md explains every choice.

// GradleEnv isolates Gradle in the test: its own GRADLE_USER_HOME (no daemon
// or cache shared between tests) and Debian's JDK, which Gradle 4.4.1
// supports, even when another JDK comes first on PATH. Add FABRIK_GRADLE_URL
// (and FABRIK_GRADLE_PASSWORD) to point the fixture at a node.
func GradleEnv(t testing.TB) []string {
	t.Helper()
	env := []string{"GRADLE_USER_HOME=" + filepath.Join(t.TempDir(), "gradle-home")}
	if fi, err := os.Stat("/usr/lib/jvm/default-java"); err == nil && fi.IsDir() {
		env = append(env, "JAVA_HOME=/usr/lib/jvm/default-java")
	}
	return env
}

// GradleArgs are the arguments for one isolated build of the gradle fixture:
// no daemon left behind, plain task lines ("> :concat FROM-CACHE" in 4.4.1 is
// ":concat FROM-CACHE"), and the build cache on. Never --offline: Gradle
// disables the remote build cache in offline mode.
func GradleArgs(tasks ...string) []string {
	if len(tasks) == 0 {
		tasks = []string{"build"}
	}
	return append([]string{"--no-daemon", "--build-cache", "--console=plain", "--stacktrace"}, tasks...)
}

// Bazel runs bazel commands in one workspace with a server of its own; the
// output base lives in the test's temp dir and the server is shut down when
// the test ends, so no Bazel server outlives a test.
type Bazel struct {
	// Dir is the workspace.
	Dir string
	// OutputBase is this test's --output_base.
	OutputBase string
	t          testing.TB
}

// NewBazel prepares bazel for the workspace at dir.
func NewBazel(t testing.TB, dir string) *Bazel {
	t.Helper()
	RequireTool(t, "bazel")
	b := &Bazel{Dir: dir, OutputBase: filepath.Join(t.TempDir(), "bazel-out"), t: t}
	t.Cleanup(func() {
		if err := b.Shutdown(); err != nil {
			t.Errorf("bazel cleanup: %v", err)
		}
	})
	return b
}

// Shutdown stops this workspace's Bazel server and waits until no process
// that names the output base is left.
func (b *Bazel) Shutdown() error {
	if out, err := RunTimeout(b.t, StopTimeout*4, b.Dir, nil, "bazel", b.startup("shutdown")...); err != nil {
		return fmt.Errorf("bazel shutdown: %w\n%s", err, out)
	}
	deadline := time.Now().Add(StopTimeout)
	for {
		pids := processesMentioning(b.OutputBase)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bazel server still running after shutdown: pids %v", pids)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processesMentioning lists the processes whose command line contains s.
func processesMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// startup puts the startup flags before the command: no user rc files, this
// test's output base, and a server that exits by itself soon after the test
// even if cleanup never runs. Debian's /etc/bazel/bazelrc must stay: it
// points Bazel at its install base.
func (b *Bazel) startup(command string) []string {
	return []string{"--nohome_rc", "--output_base=" + b.OutputBase, "--max_idle_secs=120", command}
}

// Run runs `bazel <command> <args...>` in the workspace.
func (b *Bazel) Run(command string, args ...string) (string, error) {
	b.t.Helper()
	return Run(b.t, b.Dir, nil, "bazel", append(b.startup(command), args...)...)
}

// NxEnv runs Nx offline, without Nx Cloud, its daemon or the terminal UI,
// with a local cache of its own (cacheDir; a fresh one forces the remote
// cache to be asked). Add NX_SELF_HOSTED_REMOTE_CACHE_SERVER and
// NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN to point it at a node.
func NxEnv(cacheDir string) []string {
	return []string{
		"NX_DAEMON=false",
		"NX_NO_CLOUD=true",
		"NX_TUI=false",
		"NX_CACHE_DIRECTORY=" + cacheDir,
		"NX_WORKSPACE_DATA_DIRECTORY=" + filepath.Join(cacheDir, "workspace-data"),
		"NX_VERBOSE_LOGGING=false",
		// Plain text, so tests can match markers such as "[remote cache]".
		"FORCE_COLOR=0",
		"NO_COLOR=1",
	}
}

// TurboEnv keeps Turborepo from phoning home. Add TURBO_API, TURBO_TOKEN and
// TURBO_TEAM to point it at a node; pass --cache-dir per run to force the
// remote cache to be asked.
func TurboEnv() []string {
	return []string{
		"TURBO_TELEMETRY_DISABLED=1",
		"DO_NOT_TRACK=1",
		"TURBO_NO_UPDATE_NOTIFIER=1",
		"TURBO_PRINT_VERSION_DISABLED=1",
		"NO_COLOR=1",
	}
}

// LinkNodeModules makes dir/node_modules the pinned npm install of
// scripts/install-tools.sh, so a fixture uses nx without a network install.
func LinkNodeModules(t testing.TB, dir string) {
	t.Helper()
	RequireTool(t, "nx")
	if err := os.Symlink(NodeModulesDir(), filepath.Join(dir, "node_modules")); err != nil {
		t.Fatalf("link node_modules: %v", err)
	}
}
