package harness

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestMustHaveTools(t *testing.T) {
	cases := []struct {
		ci, require string
		want        bool
	}{
		{"", "", false},
		{"true", "", true},
		{"1", "", true},
		{"false", "", false},
		{"", "1", true},
		{"true", "0", false},
		{"", "yes-please", true},
	}
	for _, c := range cases {
		t.Setenv("CI", c.ci)
		t.Setenv("FABRIK_E2E_REQUIRE", c.require)
		if got := MustHaveTools(); got != c.want {
			t.Errorf("CI=%q FABRIK_E2E_REQUIRE=%q: MustHaveTools() = %v, want %v", c.ci, c.require, got, c.want)
		}
	}
}

func TestLookToolFindsPathAndMissing(t *testing.T) {
	if _, err := LookTool("sh"); err != nil {
		t.Fatalf("sh: %v", err)
	}
	if p, err := LookTool("fabrik-no-such-tool"); err == nil {
		t.Fatalf("found a tool that does not exist: %s", p)
	}
}

func TestLookToolUsesToolsDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FABRIK_TOOLS_DIR", dir)
	t.Setenv("PATH", "/nonexistent")
	if _, err := LookTool("turbo"); err == nil {
		t.Fatal("found turbo in an empty tools dir")
	}
	bin := filepath.Join(dir, "npm", "node_modules", ".bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "turbo"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := LookTool("turbo")
	if err != nil || p != filepath.Join(bin, "turbo") {
		t.Fatalf("LookTool(turbo) = %q, %v", p, err)
	}
}

func TestFreePortIsBindableAndDistinct(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", loopback(p))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", p, err)
		}
		l.Close()
	}
}

func TestCopyFixtureCopiesTree(t *testing.T) {
	dir := CopyFixture(t, "gradle")
	for _, f := range []string{"settings.gradle", "build.gradle", "src/main/java/fabrik/e2e/Hello.java", "inputs/a.txt"} {
		want, err := os.ReadFile(filepath.Join(RepoRoot(t), "e2e", "testdata", "gradle", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("copy lacks %s: %v", f, err)
		}
		if string(got) != string(want) {
			t.Fatalf("%s differs from the fixture", f)
		}
	}
	if strings.HasPrefix(dir, filepath.Join(RepoRoot(t), "e2e")) {
		t.Fatalf("copy %s is inside the repository", dir)
	}
}

func TestRunReturnsOutputAndExitCode(t *testing.T) {
	out, err := Run(t, t.TempDir(), []string{"FABRIK_X=42"}, "sh", "-c", "echo out $FABRIK_X; echo err >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "exited with 3") {
		t.Fatalf("err = %v, want exit 3", err)
	}
	if !strings.Contains(out, "out 42") || !strings.Contains(out, "err") {
		t.Fatalf("output %q lacks stdout or stderr", out)
	}
}

// A tool that forks a background child must not outlive its timeout: the
// whole process group goes.
func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	start := time.Now()
	_, err := RunTimeout(t, time.Second, t.TempDir(), nil, "sh", "-c", "sleep 60 & echo $! > "+pidFile+"; wait")
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("RunTimeout took %s after a 1s timeout", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("background child %d still alive after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
