package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// The activation tests drive real interactive shells (bash, zsh, fish) in a
// private tmux server: keys are typed as a developer types them, and every
// prompt runs the hook exactly as it would on a laptop. Each test has its
// own HOME, XDG_* directories and GRADLE_USER_HOME in a temp dir, and kills
// the tmux server and every daemon it started when it ends, even on failure.

// shellWorld is one test's isolated machine: directories, a tmux server,
// and the fabrik-node binary the shells activate.
type shellWorld struct {
	t          *testing.T
	bin        string
	root       string
	home       string
	state      string
	cache      string
	config     string
	gradleHome string
	sock       string
	shells     atomic.Int32
}

func newShellWorld(t *testing.T) *shellWorld {
	t.Helper()
	harness.RequireTool(t, "tmux")
	root := t.TempDir()
	w := &shellWorld{
		t:          t,
		bin:        harness.BuildBinary(t),
		root:       root,
		home:       filepath.Join(root, "home"),
		state:      filepath.Join(root, "state"),
		cache:      filepath.Join(root, "cache"),
		config:     filepath.Join(root, "config"),
		gradleHome: filepath.Join(root, "gradle-home"),
		sock:       filepath.Join(root, "tmux.sock"),
	}
	// fish's first interactive start generates completions from man pages
	// in a background process unless this directory exists; that process
	// outlived the shells and wrote into the temp dir while the test
	// removed it ("directory not empty").
	fishCompletions := filepath.Join(w.home, ".local", "share", "fish", "generated_completions")
	for _, d := range []string{w.home, w.state, w.cache, w.config, w.gradleHome, fishCompletions} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(w.cleanup)
	return w
}

// cleanup kills the tmux server (and with it the shells and their builds)
// and every daemon of this world: found by their environment, so a daemon
// that never published its state is killed too.
func (w *shellWorld) cleanup() {
	if w.t.Failed() {
		logs, _ := filepath.Glob(filepath.Join(w.state, "fabrik", "daemons", "*.log"))
		for _, l := range logs {
			w.t.Logf("daemon log %s:\n%s", l, tailOf(readString(l), 40))
		}
	}
	exec.Command("tmux", "-S", w.sock, "kill-server").Run()
	for _, pid := range w.daemonPIDs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// daemonPIDs lists the live daemon processes of this world.
func (w *shellWorld) daemonPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(environ, []byte("XDG_STATE_HOME="+w.state+"\x00")) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if bytes.Contains(cmdline, []byte("daemon\x00run\x00")) && !bytes.Contains(stat, []byte(") Z ")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// project writes a project directory with a fabrik.toml.
func (w *shellWorld) project(name, toml string) string {
	w.t.Helper()
	dir := filepath.Join(w.root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fabrik.toml"), []byte(toml), 0o644); err != nil {
		w.t.Fatal(err)
	}
	return dir
}

// env is the shells' whole environment (env -i): nothing of the real
// user's leaks in.
func (w *shellWorld) env(shell string) []string {
	env := []string{
		"HOME=" + w.home,
		"USER=" + os.Getenv("USER"),
		"PATH=" + filepath.Join(harness.NodeModulesDir(), ".bin") + ":" + os.Getenv("PATH"),
		"TERM=screen",
		"LANG=C.UTF-8",
		"SHELL=/bin/" + shell,
		"XDG_STATE_HOME=" + w.state,
		"XDG_CACHE_HOME=" + w.cache,
		"XDG_CONFIG_HOME=" + w.config,
		"GRADLE_USER_HOME=" + w.gradleHome,
		"ZDOTDIR=" + filepath.Join(w.root, "zdotdir"),
	}
	if fi, err := os.Stat("/usr/lib/jvm/default-java"); err == nil && fi.IsDir() {
		env = append(env, "JAVA_HOME=/usr/lib/jvm/default-java")
	}
	return env
}

// tshell is one interactive shell in the world's tmux server.
type tshell struct {
	w      *shellWorld
	kind   string
	target string
	out    string
	n      int
}

// open starts an interactive shell whose startup file activates fabrik-node
// the documented way.
func (w *shellWorld) open(kind string) *tshell {
	w.t.Helper()
	harness.RequireTool(w.t, kind)
	id := w.shells.Add(1)
	s := &tshell{w: w, kind: kind, target: fmt.Sprintf("%s%d", kind, id), out: filepath.Join(w.root, fmt.Sprintf("out-%s%d", kind, id))}
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		w.t.Fatal(err)
	}
	var argv []string
	switch kind {
	case "bash":
		rc := filepath.Join(w.root, "bashrc")
		writeFile(w.t, rc, "PS1='$ '\neval \"$("+w.bin+" activate bash)\"\n")
		argv = []string{"bash", "--noprofile", "--rcfile", rc, "-i"}
	case "zsh":
		writeFile(w.t, filepath.Join(w.root, "zdotdir", ".zshrc"), "PROMPT='%% '\neval \"$("+w.bin+" activate zsh)\"\n")
		argv = []string{"zsh", "-i"}
	case "fish":
		writeFile(w.t, filepath.Join(w.config, "fish", "config.fish"),
			"set -g fish_greeting ''\nfunction fish_prompt; echo '> '; end\n"+w.bin+" activate fish | source\n")
		argv = []string{"fish", "-i"}
	default:
		w.t.Fatalf("unknown shell %q", kind)
	}
	cmd := "exec env -i " + shJoin(w.env(kind)) + " " + shJoin(argv)
	tmux := exec.Command("tmux", "-S", w.sock, "new-session", "-d", "-s", s.target, "-x", "200", "-y", "50", "-c", w.root, cmd)
	if out, err := tmux.CombinedOutput(); err != nil {
		w.t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	// The first prompt has run the hook once the shell answers.
	s.run("true", 30*time.Second)
	return s
}

func shJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// send types a line into the shell.
func (s *tshell) send(line string) {
	s.w.t.Helper()
	if out, err := exec.Command("tmux", "-S", s.w.sock, "send-keys", "-t", s.target, "-l", line).CombinedOutput(); err != nil {
		s.w.t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
	if out, err := exec.Command("tmux", "-S", s.w.sock, "send-keys", "-t", s.target, "Enter").CombinedOutput(); err != nil {
		s.w.t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
}

// start types line, then a second line that leaves a marker file. The
// marker exists only once the shell has read the second line, i.e. after
// line ran and the prompt hooks that follow it ran (bash runs
// PROMPT_COMMAND only before the next prompt). It returns the marker.
func (s *tshell) start(line string) string {
	s.w.t.Helper()
	s.n++
	marker := filepath.Join(s.out, fmt.Sprintf("done-%d", s.n))
	s.send(line)
	s.send("echo ok > " + marker)
	return marker
}

// wait waits for a marker start returned.
func (s *tshell) wait(marker string, timeout time.Duration) {
	s.w.t.Helper()
	if !waitFor(timeout, func() bool { _, err := os.Stat(marker); return err == nil }) {
		pane, _ := exec.Command("tmux", "-S", s.w.sock, "capture-pane", "-p", "-t", s.target, "-S", "-60").CombinedOutput()
		s.w.t.Fatalf("%s: no prompt within %s after %q; screen:\n%s", s.target, timeout, marker, pane)
	}
}

// run types line and waits until it and the following prompt hook ran.
func (s *tshell) run(line string, timeout time.Duration) {
	s.w.t.Helper()
	s.wait(s.start(line), timeout)
}

// status is the shell's last exit status variable.
func (s *tshell) status() string {
	if s.kind == "fish" {
		return "$status"
	}
	return "$?"
}

// runLogged runs a command with its output in a file and returns the
// output and exit code.
func (s *tshell) runLogged(line string, timeout time.Duration) (string, int) {
	s.w.t.Helper()
	s.n++
	out := filepath.Join(s.out, fmt.Sprintf("cmd-%d.log", s.n))
	rc := filepath.Join(s.out, fmt.Sprintf("cmd-%d.rc", s.n))
	s.run(line+" > "+out+" 2>&1; echo "+s.status()+" > "+rc, timeout)
	body, _ := os.ReadFile(out)
	code, err := strconv.Atoi(strings.TrimSpace(readString(rc)))
	if err != nil {
		s.w.t.Fatalf("%s: no exit code for %q", s.target, line)
	}
	return string(body), code
}

func tailOf(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// env returns the shell's exported environment as it is now.
func (s *tshell) env() map[string]string {
	s.w.t.Helper()
	s.n++
	path := filepath.Join(s.out, fmt.Sprintf("env-%d", s.n))
	s.run("env > "+path, 30*time.Second)
	m := map[string]string{}
	for _, line := range strings.Split(readString(path), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// daemonState is a daemon's state directory as the tests read it.
type daemonState struct {
	ID         string
	PID        int
	Ports      map[string]int
	ConfigPath string
}

func readDaemonState(t *testing.T, dir string) (daemonState, bool) {
	t.Helper()
	var s daemonState
	s.ID = filepath.Base(dir)
	body, err := os.ReadFile(filepath.Join(dir, "ports.json"))
	if err != nil {
		return s, false
	}
	decodeJSON(t, body, &s.Ports)
	pid, err := strconv.Atoi(strings.TrimSpace(readString(filepath.Join(dir, "pid"))))
	if err != nil {
		t.Fatalf("daemon state %s: pid: %v", dir, err)
	}
	s.PID = pid
	s.ConfigPath = strings.TrimSpace(readString(filepath.Join(dir, "config_path.txt")))
	return s, true
}

// daemonStates lists the world's published daemon states.
func (w *shellWorld) daemonStates() []daemonState {
	w.t.Helper()
	root := filepath.Join(w.state, "fabrik", "daemons")
	entries, _ := os.ReadDir(root)
	var out []daemonState
	for _, e := range entries {
		if e.IsDir() {
			if s, ok := readDaemonState(w.t, filepath.Join(root, e.Name())); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// healthOf fetches a daemon's /health and fails unless it is healthy.
func healthOf(t *testing.T, healthPort int) map[string]any {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/health", healthPort))
	if err != nil {
		t.Fatalf("daemon health: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 || body["status"] != "healthy" {
		t.Fatalf("daemon health: %d %v (%v)", resp.StatusCode, body, err)
	}
	return body
}
