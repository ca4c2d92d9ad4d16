package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The figures in BENCHMARKS.md ("Shell activation"): what the hook costs at
// a prompt where nothing changed (it must spawn no process: asserted against
// the cost of a directory change, which runs fabrik-node once), what a directory change
// costs (one `activate --status` against a running daemon), and the time
// from `activate --status` in a new project to the daemon serving.
//
//	go test ./e2e -run TestActivationCost -v
func TestActivationCost(t *testing.T) {
	w := newShellWorld(t)
	p := w.project("cost", "[build_tools]\nenabled = [\"gradle\", \"nx\", \"turborepo\"]\n")
	deep := filepath.Join(p, "a", "b", "c", "d", "e")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"bash", "zsh", "fish"} {
		sh := w.open(kind)
		sh.run("cd "+deep, 60*time.Second)
		const prompts = 1000
		unchanged := sh.timeLoop(fmt.Sprintf("for i in %s; __fabrik_hook; end", seqOf(kind, prompts)))
		const switches = 10
		changed := sh.timeLoop(fmt.Sprintf("for i in %s; cd %s; __fabrik_hook; cd /; __fabrik_hook; end", seqOf(kind, switches), deep))
		perPrompt := unchanged / prompts
		perSwitch := changed / (2 * switches)
		t.Logf("%s: unchanged prompt %v per prompt (%d prompts, 5 levels below fabrik.toml); directory change %v per change (%d changes)",
			kind, perPrompt, prompts, perSwitch, 2*switches)
		// Both loops run under the same machine load, so compare them: a
		// directory change costs one fork+exec of fabrik-node, and an
		// unchanged prompt that spawned anything would cost about as much.
		if perPrompt > perSwitch/4 || perPrompt > 20*time.Millisecond {
			t.Errorf("%s: %v per unchanged prompt against %v per directory change: the hook must not spawn a process when nothing changed", kind, perPrompt, perSwitch)
		}
		if e := sh.env(); e["FABRIK_HTTP_URL"] != "" {
			t.Fatalf("%s: after the loop ended in /, FABRIK_HTTP_URL is still %q", kind, e["FABRIK_HTTP_URL"])
		}
	}

	// Daemon start to serving: `activate --status` in a project whose daemon
	// does not run returns once the daemon published its ports; then /health.
	var starts []time.Duration
	for i := range 5 {
		proj := w.project(fmt.Sprintf("start-%d", i), fmt.Sprintf("[cache]\nmax_size = \"%dGB\"\n", i+1))
		begin := time.Now()
		port := w.startDaemon(proj).Ports["health"]
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/health")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("health right after activate --status: %v %v", resp, err)
		}
		resp.Body.Close()
		starts = append(starts, time.Since(begin))
	}
	slices.Sort(starts)
	t.Logf("daemon start to serving (activate --status in a new project, then /health 200): median %v, min %v, max %v over %d",
		starts[len(starts)/2], starts[0], starts[len(starts)-1], len(starts))
}

func seqOf(kind string, n int) string {
	if kind == "fish" {
		return fmt.Sprintf("(seq %d)", n)
	}
	return fmt.Sprintf("$(seq %d)", n)
}

// timeLoop runs a loop written in fish syntax (translated for bash and zsh)
// and returns its wall time, measured by the shell itself.
func (s *tshell) timeLoop(fishLoop string) time.Duration {
	s.w.t.Helper()
	loop := fishLoop
	if s.kind != "fish" {
		// "for i in X; body; end" -> "for i in X; do body; done"
		head, body, _ := strings.Cut(strings.TrimSuffix(fishLoop, "; end"), "; ")
		loop = head + "; do " + body + "; done"
	}
	s.n++
	file := filepath.Join(s.out, fmt.Sprintf("time-%d", s.n))
	var line string
	if s.kind == "fish" {
		line = "set __s (date +%s%N); " + loop + "; set __e (date +%s%N); math $__e - $__s > " + file
	} else {
		line = "__s=$(date +%s%N); " + loop + "; __e=$(date +%s%N); echo $((__e - __s)) > " + file
	}
	s.run(line, 5*time.Minute)
	ns, err := strconv.ParseInt(strings.TrimSpace(readString(file)), 10, 64)
	if err != nil {
		s.w.t.Fatalf("%s: timing %q: %v (%q)", s.target, loop, err, readString(file))
	}
	return time.Duration(ns)
}
