package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDaemon runs `activate --status` in dir (as the hook would) and
// returns the daemon it published.
func (w *shellWorld) startDaemon(dir string) daemonState {
	w.t.Helper()
	cmd := exec.Command(w.bin, "activate", "--status", "--shell", "bash")
	cmd.Dir, cmd.Env = dir, w.env("bash")
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("activate --status: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "export FABRIK_DAEMON='"); ok {
			if s, ok := readDaemonState(w.t, strings.TrimSuffix(v, "';")); ok {
				return s
			}
		}
	}
	w.t.Fatalf("activate --status started no daemon:\n%s", out)
	return daemonState{}
}

func gone(pid int) bool { return syscall.Kill(pid, 0) != nil || isZombie(pid) }

// Without any shell coming back: a daemon whose fabrik.toml changed stops by
// itself once idle, and one whose fabrik.toml was deleted too; SIGINT drains
// and removes the state like SIGTERM.
func TestDaemonStopsByItself(t *testing.T) {
	w := newShellWorld(t)

	edited := w.project("edited", "[cache]\nmax_size = \"1GB\"\n")
	d := w.startDaemon(edited)
	writeFile(t, filepath.Join(edited, "fabrik.toml"), "[cache]\nmax_size = \"2GB\"\n")
	if !waitFor(20*time.Second, func() bool { return gone(d.PID) }) {
		t.Fatalf("daemon %d of an edited config still runs", d.PID)
	}
	if _, err := os.Stat(filepath.Join(w.state, "fabrik", "daemons", d.ID)); !os.IsNotExist(err) {
		t.Fatalf("its state is still there: %v", err)
	}

	removed := w.project("removed", "[cache]\nmax_size = \"3GB\"\n")
	d = w.startDaemon(removed)
	if err := os.Remove(filepath.Join(removed, "fabrik.toml")); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool { return gone(d.PID) }) {
		t.Fatalf("daemon %d of a deleted config still runs", d.PID)
	}

	interrupted := w.project("interrupted", "[cache]\nmax_size = \"4GB\"\n")
	d = w.startDaemon(interrupted)
	if err := syscall.Kill(d.PID, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool { return gone(d.PID) }) {
		t.Fatalf("daemon %d survived SIGINT", d.PID)
	}
	if _, err := os.Stat(filepath.Join(w.state, "fabrik", "daemons", d.ID)); !os.IsNotExist(err) {
		t.Fatalf("state after SIGINT: %v", err)
	}
}
