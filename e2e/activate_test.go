package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hookVars are the variables activation exports for the default tools.
var hookVars = []string{"FABRIK_DAEMON", "FABRIK_HTTP_URL", "FABRIK_GRPC_URL", "GRADLE_BUILD_CACHE_URL",
	"NX_SELF_HOSTED_REMOTE_CACHE_SERVER", "TURBO_API", "TURBO_TOKEN"}

// In each shell: two projects with different configs get their own
// daemons on distinct ports and the variables follow cd; a variable the user
// set survives everything; cd / unsets the rest; a daemon killed with -9 is
// replaced when the shell comes back; an edited config gets a new daemon and
// the old one stops; deactivate --stop-daemon unsets and stops.
func TestActivationFollowsProjects(t *testing.T) {
	for _, kind := range []string{"bash", "zsh", "fish"} {
		t.Run(kind, func(t *testing.T) { activationFollowsProjects(t, kind) })
	}
}

func activationFollowsProjects(t *testing.T, kind string) {
	w := newShellWorld(t)
	p1 := w.project("p1", "[build_tools]\nenabled = [\"gradle\", \"bazel\", \"nx\", \"turborepo\"]\n")
	p2 := w.project("p2", "[build_tools]\nenabled = [\"gradle\", \"nx\"]\n[cache]\nmax_size = \"1GB\"\n")
	p2sub := filepath.Join(p2, "sub", "dir")
	if err := os.MkdirAll(p2sub, 0o755); err != nil {
		t.Fatal(err)
	}
	sh := w.open(kind)
	export := "export TURBO_TEAM=mine"
	if kind == "fish" {
		export = "set -gx TURBO_TEAM mine"
	}
	sh.run(export, 10*time.Second)

	sh.run("cd "+p1, 60*time.Second)
	e1 := sh.env()
	for _, v := range hookVars {
		if e1[v] == "" {
			t.Fatalf("in p1: %s not exported; env: %v", v, e1)
		}
	}
	if e1["TURBO_TEAM"] != "mine" {
		t.Fatalf("TURBO_TEAM = %q, want the user's own %q", e1["TURBO_TEAM"], "mine")
	}
	d1, ok := readDaemonState(t, e1["FABRIK_DAEMON"])
	if !ok || d1.ConfigPath != filepath.Join(p1, "fabrik.toml") {
		t.Fatalf("p1 daemon state %+v (published %v)", d1, ok)
	}
	if e1["FABRIK_HTTP_URL"] != fmt.Sprintf("http://127.0.0.1:%d", d1.Ports["http"]) ||
		e1["GRADLE_BUILD_CACHE_URL"] != e1["FABRIK_HTTP_URL"]+"/cache/" ||
		e1["FABRIK_GRPC_URL"] != fmt.Sprintf("grpc://127.0.0.1:%d", d1.Ports["grpc"]) {
		t.Fatalf("p1 exports %v do not match its ports %v", e1, d1.Ports)
	}
	healthOf(t, d1.Ports["health"])

	sh.run("cd "+p2sub, 60*time.Second)
	e2 := sh.env()
	d2, ok := readDaemonState(t, e2["FABRIK_DAEMON"])
	if !ok || d2.ID == d1.ID || d2.ConfigPath != filepath.Join(p2, "fabrik.toml") {
		t.Fatalf("p2 daemon %+v, p1 daemon %+v: want another daemon for p2", d2, d1)
	}
	for _, name := range []string{"http", "health", "api"} {
		if d2.Ports[name] == d1.Ports[name] {
			t.Fatalf("p1 and p2 share the %s port %d", name, d1.Ports[name])
		}
	}
	if e2["FABRIK_HTTP_URL"] != fmt.Sprintf("http://127.0.0.1:%d", d2.Ports["http"]) {
		t.Fatalf("in p2 FABRIK_HTTP_URL = %q, p2's port is %d", e2["FABRIK_HTTP_URL"], d2.Ports["http"])
	}
	// p2 enables neither Bazel nor Turborepo: their variables go, except
	// the user's own TURBO_TEAM.
	for _, v := range []string{"FABRIK_GRPC_URL", "TURBO_API", "TURBO_TOKEN"} {
		if _, set := e2[v]; set {
			t.Fatalf("in p2 %s is still set (%q)", v, e2[v])
		}
	}
	if e2["TURBO_TEAM"] != "mine" {
		t.Fatalf("in p2 TURBO_TEAM = %q, want the user's %q", e2["TURBO_TEAM"], "mine")
	}
	healthOf(t, d2.Ports["health"])

	sh.run("cd "+p1, 30*time.Second)
	if e := sh.env(); e["FABRIK_DAEMON"] != e1["FABRIK_DAEMON"] || e["FABRIK_HTTP_URL"] != e1["FABRIK_HTTP_URL"] {
		t.Fatalf("back in p1: %v, want p1's daemon again (%s)", e, e1["FABRIK_HTTP_URL"])
	}

	sh.run("cd /", 30*time.Second)
	e0 := sh.env()
	for _, v := range append(hookVars, "__FABRIK_SET") {
		if _, set := e0[v]; set {
			t.Fatalf("outside every project %s is still set (%q)", v, e0[v])
		}
	}
	if e0["TURBO_TEAM"] != "mine" {
		t.Fatalf("outside every project TURBO_TEAM = %q, want the user's %q", e0["TURBO_TEAM"], "mine")
	}

	// kill -9 leaves a stale state directory; coming back replaces it.
	if err := syscall.Kill(d1.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return syscall.Kill(d1.PID, 0) != nil || isZombie(d1.PID) }) {
		t.Fatalf("daemon %d survived kill -9", d1.PID)
	}
	sh.run("cd "+p1, 60*time.Second)
	e3 := sh.env()
	d3, ok := readDaemonState(t, e3["FABRIK_DAEMON"])
	if !ok || d3.ID != d1.ID || d3.PID == d1.PID {
		t.Fatalf("after kill -9: daemon %+v, the killed one %+v: want a new process for the same config", d3, d1)
	}
	if e3["FABRIK_HTTP_URL"] != fmt.Sprintf("http://127.0.0.1:%d", d3.Ports["http"]) {
		t.Fatalf("after kill -9 FABRIK_HTTP_URL = %q, the new daemon's port is %d", e3["FABRIK_HTTP_URL"], d3.Ports["http"])
	}
	healthOf(t, d3.Ports["health"])

	// An edited config is another daemon, at the next prompt; the old one
	// stops and removes its state.
	writeFile(t, filepath.Join(p1, "fabrik.toml"), "[build_tools]\nenabled = [\"gradle\", \"bazel\", \"nx\", \"turborepo\"]\n[cache]\nmax_size = \"2GB\"\n")
	sh.run("true", 60*time.Second)
	e4 := sh.env()
	d4, ok := readDaemonState(t, e4["FABRIK_DAEMON"])
	if !ok || d4.ID == d3.ID {
		t.Fatalf("after editing p1's config: daemon %+v, want a new one (old %s)", d4, d3.ID)
	}
	if !waitFor(30*time.Second, func() bool { return syscall.Kill(d3.PID, 0) != nil || isZombie(d3.PID) }) {
		t.Fatalf("the daemon of p1's old config (pid %d) still runs", d3.PID)
	}
	if _, err := os.Stat(e3["FABRIK_DAEMON"]); !os.IsNotExist(err) {
		t.Fatalf("the old daemon's state %s is still there (%v)", e3["FABRIK_DAEMON"], err)
	}
	healthOf(t, d4.Ports["health"])

	// health and daemon list in the activated shell.
	out, code := sh.runLogged("fabrik-node health", 30*time.Second)
	if code != 0 || !strings.Contains(out, "healthy") || !strings.Contains(out, d4.ID) || !strings.Contains(out, "hit ratio") {
		t.Fatalf("fabrik-node health: exit %d\n%s", code, out)
	}
	out, code = sh.runLogged("fabrik-node daemon list", 30*time.Second)
	if code != 0 || !strings.Contains(out, d4.ID) || !strings.Contains(out, d2.ID) || strings.Contains(out, d3.ID+" ") {
		t.Fatalf("fabrik-node daemon list: exit %d\n%s", code, out)
	}

	// `fabrik-node bazel` in an activated shell uses the daemon rather than
	// a one-shot edge (echo stands in for bazel and shows the flags).
	out, code = sh.runLogged("FABRIK_BAZEL_BIN=echo fabrik-node bazel -- build //...", 30*time.Second)
	if want := fmt.Sprintf("build --remote_cache=grpc://127.0.0.1:%d //...", d4.Ports["grpc"]); code != 0 || !strings.Contains(out, want) {
		t.Fatalf("fabrik-node bazel: exit %d, want %q in:\n%s", code, want, out)
	}

	// deactivate --stop-daemon: everything unset, the daemon stopped, and
	// the hook stays off in this shell.
	sh.run("fabrik-node deactivate --stop-daemon", 60*time.Second)
	e5 := sh.env()
	for _, v := range append(hookVars, "__FABRIK_SET") {
		if _, set := e5[v]; set {
			t.Fatalf("after deactivate %s is still set (%q)", v, e5[v])
		}
	}
	if !waitFor(30*time.Second, func() bool { return syscall.Kill(d4.PID, 0) != nil || isZombie(d4.PID) }) {
		t.Fatalf("deactivate --stop-daemon left daemon %d running", d4.PID)
	}
	sh.run("cd "+p2, 30*time.Second)
	if e := sh.env(); e["FABRIK_DAEMON"] != "" {
		t.Fatalf("after deactivate, cd p2 activated again: %v", e)
	}
	if pids := w.daemonPIDs(); len(pids) != 1 || pids[0] != d2.PID {
		t.Fatalf("daemons running: %v, want only p2's (%d)", pids, d2.PID)
	}
}

func isZombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && strings.Contains(string(stat), ") Z ")
}

// Four shells (bash, bash, zsh, fish) entering one project at the same
// moment start exactly one daemon, and all of them use it.
func TestActivationConcurrentShellsStartOneDaemon(t *testing.T) {
	w := newShellWorld(t)
	p := w.project("shared", "[build_tools]\nenabled = [\"gradle\", \"nx\"]\n")
	shells := []*tshell{w.open("bash"), w.open("bash"), w.open("zsh"), w.open("fish")}
	if pids := w.daemonPIDs(); len(pids) != 0 {
		t.Fatalf("daemons before any cd: %v", pids)
	}
	var markers []string
	for _, sh := range shells {
		markers = append(markers, sh.start("cd "+p))
	}
	for i, sh := range shells {
		sh.wait(markers[i], 60*time.Second)
	}
	states := w.daemonStates()
	if len(states) != 1 {
		t.Fatalf("daemon states: %+v, want one", states)
	}
	if pids := w.daemonPIDs(); len(pids) != 1 || pids[0] != states[0].PID {
		t.Fatalf("daemon processes %v, want exactly the published one (%d)", pids, states[0].PID)
	}
	want := fmt.Sprintf("http://127.0.0.1:%d", states[0].Ports["http"])
	for _, sh := range shells {
		if got := sh.env()["FABRIK_HTTP_URL"]; got != want {
			t.Fatalf("%s: FABRIK_HTTP_URL = %q, want the one daemon's %q", sh.target, got, want)
		}
	}
	// Not a terminal: the daemon logs JSON (log_format = auto).
	log := readString(filepath.Join(w.state, "fabrik", "daemons", states[0].ID+".log"))
	if !strings.HasPrefix(log, "{") || !strings.Contains(log, `"msg":"daemon serving"`) {
		t.Fatalf("daemon log is not JSON:\n%s", log)
	}

	// daemon stop HASH (a prefix is enough) drains it and removes its state.
	stop := exec.Command(w.bin, "daemon", "stop", states[0].ID[:6])
	stop.Env, stop.Dir = w.env("bash"), w.root
	if out, err := stop.CombinedOutput(); err != nil || !strings.Contains(string(out), states[0].ID+" stopped") {
		t.Fatalf("daemon stop: %v\n%s", err, out)
	}
	if pids := w.daemonPIDs(); len(pids) != 0 {
		t.Fatalf("daemons left after daemon stop: %v", pids)
	}
	if s := w.daemonStates(); len(s) != 0 {
		t.Fatalf("state left after daemon stop: %+v", s)
	}
}
