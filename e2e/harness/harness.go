// Package harness is what the end-to-end tests share: finding the real build
// tools (and refusing to skip them in CI), copying fixture projects, running
// commands with a deadline, and building and starting real fabrik-node
// processes on free loopback ports.
//
// Tools are installed by scripts/install-tools.sh; fixtures live in
// e2e/testdata (see e2e/testdata/CLIENTS.md for what each client sends and
// how a test recognises a remote cache hit).
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/internal/ci"
)

// DefaultRunTimeout bounds one Run when the test has no nearer deadline; a
// cold Bazel build on a loaded 2-core machine takes about 40 s.
const DefaultRunTimeout = 5 * time.Minute

// RequireTool returns the path of a real tool the test needs. When the tool is
// missing it skips the test on a developer's machine, but fails it when CI is
// set or FABRIK_E2E_REQUIRE=1: CI must prove the clients work, never skip them
// silently. Names: gradle, bazel, nx, turbo, nats-server, minio, node, npm,
// java, or any command on PATH.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := LookTool(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not installed (%v): run scripts/install-tools.sh", name, err)
	if MustHaveTools() {
		t.Fatalf("%s; CI or FABRIK_E2E_REQUIRE=1 forbids skipping", msg)
	}
	t.Skip(msg)
	return ""
}

// MustHaveTools reports whether a missing tool is a failure rather than a
// skip: under CI (any non-empty CI but "false"/"0") or FABRIK_E2E_REQUIRE=1.
func MustHaveTools() bool { return ci.Strict() }

// LookTool finds a tool where scripts/install-tools.sh puts it: npm tools in
// the tools dir, nats-server in /usr/sbin (not on a non-root PATH), minio in
// FABRIK_TOOLS_BIN (crane and oras too); everything else on PATH.
func LookTool(name string) (string, error) {
	var candidates []string
	switch name {
	case "nx", "turbo":
		candidates = append(candidates, filepath.Join(NodeModulesDir(), ".bin", name))
	case "nats-server":
		candidates = append(candidates, "/usr/sbin/nats-server")
	case "haproxy":
		candidates = append(candidates, "/usr/sbin/haproxy")
	case "minio", "crane", "oras":
		candidates = append(candidates, filepath.Join(toolsBinDir(), name))
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s not on PATH nor in %v", name, candidates)
}

// ToolsDir is the cache install-tools.sh installs into.
func ToolsDir() string {
	if d := os.Getenv("FABRIK_TOOLS_DIR"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "fabrik-node")
}

// NodeModulesDir holds the pinned nx and turbo packages.
func NodeModulesDir() string { return filepath.Join(ToolsDir(), "npm", "node_modules") }

func toolsBinDir() string {
	if d := os.Getenv("FABRIK_TOOLS_BIN"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "fabrik-node", "bin")
}

// handedOut remembers ports FreePort already returned in this process, so
// two calls never return the same port even if the first is not bound yet.
var handedOut sync.Map

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process may still take it before the caller binds it; e2e tests accept that
// small race in exchange for configs with fixed, known ports.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, taken := handedOut.LoadOrStore(port, true); !taken {
			return port
		}
	}
	t.Fatal("free port: the kernel kept returning ports already handed out")
	return 0
}

// RepoRoot is the module root (the directory with go.mod), found from this
// source file so tests work from any package directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("repo root: no caller information")
	}
	for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if dir == filepath.Dir(dir) {
			t.Fatalf("repo root: no go.mod above %s", file)
		}
	}
}

// CopyFixture copies e2e/testdata/<name> into a fresh temp directory and
// returns the copy's path, so each test builds in a clean tree of its own.
// Symlinks are copied as symlinks.
func CopyFixture(t testing.TB, name string) string {
	t.Helper()
	src := filepath.Join(RepoRoot(t), "e2e", "testdata", name)
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		t.Fatalf("fixture %q: %s is not a directory", name, src)
	}
	dst := filepath.Join(t.TempDir(), name)
	if err := copyTree(src, dst); err != nil {
		t.Fatalf("copy fixture %q: %v", name, err)
	}
	return dst
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm()|0o600)
		}
	})
}

// Run runs name with args in dir, with env appended to this process's
// environment, and returns its combined output. It is bounded by the test's
// deadline (less a minute for cleanup) or DefaultRunTimeout, whichever is
// nearer; on timeout the whole process group is killed, so daemons the tool
// forked do not outlive the test. The error is non-nil when the command
// fails or times out; the output is returned either way.
func Run(t testing.TB, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	timeout := DefaultRunTimeout
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			if left := time.Until(deadline) - time.Minute; left < timeout {
				timeout = max(left, 10*time.Second)
			}
		}
	}
	return RunTimeout(t, timeout, dir, env, name, args...)
}

// RunTimeout is Run with an explicit timeout.
func RunTimeout(t testing.TB, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A grandchild holding the output pipe open must not hang Wait forever.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	t.Logf("ran %s %v in %s (%s)", name, args, dir, elapsed)
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("%s timed out after %s: %w", name, timeout, ctx.Err())
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return out.String(), fmt.Errorf("%s exited with %d: %w", name, exit.ExitCode(), err)
		}
		return out.String(), fmt.Errorf("run %s: %w", name, err)
	}
	return out.String(), nil
}
