package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests start real processes: this test binary, re-executed as a
// stand-in daemon (FABRIK_FAKE_DAEMON=1) that publishes its state the way
// `fabrik-node daemon run` does and removes it on SIGTERM. The node itself
// is the e2e tests' business.
func TestMain(m *testing.M) {
	if os.Getenv("FABRIK_FAKE_DAEMON") == "1" {
		os.Exit(fakeDaemon(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeDaemon(args []string) int {
	// args: daemon run --config PATH --id ID
	if len(args) != 6 || args[0] != "daemon" || args[1] != "run" {
		fmt.Fprintln(os.Stderr, "fake daemon: bad args", args)
		return 2
	}
	path, id := args[3], args[5]
	root := os.Getenv("FABRIK_FAKE_ROOT")
	if os.Getenv("FABRIK_FAKE_FAIL") == "1" {
		fmt.Fprintln(os.Stderr, "fake daemon: failing at start as asked")
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	// A real daemon takes a moment to open its store: widen the window in
	// which a second starter could race.
	time.Sleep(100 * time.Millisecond)
	if _, err := Publish(root, id, os.Getpid(), path, map[string]int{"http": 1000 + os.Getpid()%1000, "health": 2}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	<-sigs
	Remove(root, id, os.Getpid())
	return 0
}

type fixture struct {
	t    *testing.T
	root string
	cfg  string
	exe  string
	env  []string
}

func newFixture(t *testing.T, content string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, root: filepath.Join(dir, "state"), cfg: filepath.Join(dir, "fabrik.toml")}
	if err := os.WriteFile(f.cfg, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f.exe = exe
	f.env = append(os.Environ(), "FABRIK_FAKE_DAEMON=1", "FABRIK_FAKE_ROOT="+f.root)
	t.Cleanup(f.killAll)
	return f
}

// killAll kills every daemon still published under the fixture's root.
func (f *fixture) killAll() {
	states, _ := List(f.root)
	for _, s := range states {
		syscall.Kill(s.PID, syscall.SIGKILL)
	}
}

func (f *fixture) ensure() (*Started, error) {
	return Ensure(StartOptions{Root: f.root, ConfigPath: f.cfg, Exe: f.exe, Env: f.env, Timeout: 20 * time.Second, StopTimeout: 10 * time.Second})
}

func (f *fixture) mustEnsure() *Started {
	f.t.Helper()
	res, err := f.ensure()
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// waitGone waits for a process to exit (and be reaped by Ensure's waiter).
func waitGone(t *testing.T, s *State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Alive() {
		if time.Now().After(deadline) {
			t.Fatalf("daemon %s (pid %d) still alive", s.ID, s.PID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIDIsContentHash(t *testing.T) {
	a, b := ID([]byte("[cache]\n")), ID([]byte("[cache]\n"))
	if a != b || len(a) != IDLength {
		t.Fatalf("ID = %q, %q: want one 16-hex identity for one content", a, b)
	}
	// sha256("") starts e3b0c44298fc1c14.
	if got := ID(nil); got != "e3b0c44298fc1c14" {
		t.Fatalf("ID(empty) = %q", got)
	}
	if ID([]byte("[cache]\n ")) == a {
		t.Fatal("different content, same ID")
	}
}

func TestRootFollowsXDG(t *testing.T) {
	env := map[string]string{"XDG_STATE_HOME": "/x/state"}
	if got := Root(func(k string) string { return env[k] }, "/home/u"); got != "/x/state/fabrik/daemons" {
		t.Fatalf("Root = %q", got)
	}
	if got := Root(func(string) string { return "" }, "/home/u"); got != "/home/u/.local/state/fabrik/daemons" {
		t.Fatalf("Root without XDG_STATE_HOME = %q", got)
	}
}

func TestPublishReadListRemove(t *testing.T) {
	root := t.TempDir()
	ports := map[string]int{"http": 5071, "grpc": 9092, "s3": 5073}
	s, err := Publish(root, "0123456789abcdef", 42, "/p/fabrik.toml", ports)
	if err != nil {
		t.Fatal(err)
	}
	if s.PID != 42 || s.ConfigPath != "/p/fabrik.toml" || s.Ports["s3"] != 5073 || s.URL("http", "http") != "http://127.0.0.1:5071" || s.URL("http", "nope") != "" {
		t.Fatalf("state read back: %+v", s)
	}
	for _, f := range []string{"pid", "ports.json", "config_path.txt"} {
		if _, err := os.Stat(filepath.Join(root, "0123456789abcdef", f)); err != nil {
			t.Fatalf("state file %s: %v", f, err)
		}
	}
	// A directory without ports.json (a daemon still starting) is not listed.
	os.MkdirAll(filepath.Join(root, "fedcba9876543210"), 0o700)
	list, err := List(root)
	if err != nil || len(list) != 1 || list[0].ID != "0123456789abcdef" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if _, err := Read(root, "fedcba9876543210"); !errors.Is(err, ErrNoState) {
		t.Fatalf("Read of an unpublished state: %v", err)
	}
	// Remove by another pid (a late predecessor) leaves the state alone.
	if err := Remove(root, "0123456789abcdef", 7); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(root, "0123456789abcdef"); err != nil {
		t.Fatalf("state removed by another pid: %v", err)
	}
	if err := Remove(root, "0123456789abcdef", 42); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(root, "0123456789abcdef"); !errors.Is(err, ErrNoState) {
		t.Fatalf("state after Remove: %v", err)
	}
}

func TestPortsOfTakesEveryListener(t *testing.T) {
	ports, err := PortsOf(map[string]string{"http": "127.0.0.1:54321", "s3": "127.0.0.1:5073", "grpc": "[::1]:9092"})
	if err != nil || len(ports) != 3 || ports["http"] != 54321 || ports["s3"] != 5073 || ports["grpc"] != 9092 {
		t.Fatalf("PortsOf = %v, %v", ports, err)
	}
	if _, err := PortsOf(map[string]string{"x": "nowhere"}); err == nil {
		t.Fatal("an address without a port was accepted")
	}
}

func TestLockExcludesAndTimesOut(t *testing.T) {
	root := t.TempDir()
	l, err := Acquire(root, "0123456789abcdef", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := Acquire(root, "0123456789abcdef", 200*time.Millisecond); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("second Acquire while held: %v, want ErrLockTimeout", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("second Acquire gave up after %s, before its timeout", d)
	}
	// Another daemon's lock is independent.
	other, err := Acquire(root, "fedcba9876543210", time.Second)
	if err != nil {
		t.Fatalf("another ID's lock: %v", err)
	}
	other.Release()
	l.Release()
	l2, err := Acquire(root, "0123456789abcdef", time.Second)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

func TestAliveRejectsGoneAndForeignPids(t *testing.T) {
	if (&State{ID: "0123456789abcdef", PID: os.Getpid()}).Alive() {
		t.Fatal("this test process, whose command line does not name the ID, was taken for the daemon")
	}
	if (&State{ID: "0123456789abcdef", PID: 0}).Alive() {
		t.Fatal("pid 0 alive")
	}
	// A pid that no longer exists: the kernel's pid_max is above 2^22 rarely.
	if (&State{ID: "0123456789abcdef", PID: 1<<22 + 12345}).Alive() {
		t.Fatal("a nonexistent pid alive")
	}
}

func TestEnsureStartsOnceAndReuses(t *testing.T) {
	f := newFixture(t, "[cache]\n")
	first := f.mustEnsure()
	if !first.New || first.State.ConfigPath != f.cfg || !first.State.Alive() {
		t.Fatalf("first Ensure: %+v", first)
	}
	again := f.mustEnsure()
	if again.New || again.State.PID != first.State.PID {
		t.Fatalf("second Ensure started another daemon: %+v, first %+v", again.State, first.State)
	}
}

// Eight callers at once (as eight shells entering one project) start one
// daemon and all get it.
func TestEnsureConcurrentCallersStartOneDaemon(t *testing.T) {
	f := newFixture(t, "[cache]\nmax_size = \"1GB\"\n")
	var wg sync.WaitGroup
	results := make([]*Started, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.ensure()
		}()
	}
	wg.Wait()
	started := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if r.New {
			started++
		}
		if r.State.PID != results[0].State.PID {
			t.Fatalf("callers got different daemons: %d and %d", r.State.PID, results[0].State.PID)
		}
	}
	if started != 1 {
		t.Fatalf("%d callers started a daemon, want 1", started)
	}
}

// kill -9 leaves the state directory behind; the next Ensure sees the pid
// gone, removes the stale state and starts a new daemon.
func TestEnsureReplacesStaleState(t *testing.T) {
	f := newFixture(t, "[cache]\nmax_size = \"2GB\"\n")
	first := f.mustEnsure()
	if err := syscall.Kill(first.State.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, first.State)
	if _, err := Read(f.root, first.State.ID); err != nil {
		t.Fatalf("kill -9 should leave the state behind: %v", err)
	}
	res := f.mustEnsure()
	if !res.New || !res.Stale || res.State.PID == first.State.PID || !res.State.Alive() {
		t.Fatalf("Ensure after kill -9: %+v (stale %v), killed pid %d", res.State, res.Stale, first.State.PID)
	}
}

// Editing the config makes another daemon; the old one of the same file is
// stopped (it removes its state) before the new one starts.
func TestEnsureSupersedesTheFilesOldContent(t *testing.T) {
	f := newFixture(t, "[cache]\nmax_size = \"3GB\"\n")
	old := f.mustEnsure().State
	if err := os.WriteFile(f.cfg, []byte("[cache]\nmax_size = \"4GB\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := f.mustEnsure()
	if res.State.ID == old.ID || len(res.Superseded) != 1 || res.Superseded[0] != old.ID {
		t.Fatalf("Ensure after an edit: %+v superseded %v; old %s", res.State, res.Superseded, old.ID)
	}
	waitGone(t, old)
	if _, err := Read(f.root, old.ID); !errors.Is(err, ErrNoState) {
		t.Fatalf("the old daemon's state survived: %v", err)
	}
}

func TestEnsureReportsADaemonThatFailsToStart(t *testing.T) {
	f := newFixture(t, "[cache]\n")
	f.env = append(f.env, "FABRIK_FAKE_FAIL=1")
	_, err := f.ensure()
	if err == nil {
		t.Fatal("Ensure succeeded although the daemon exited at start")
	}
	if want := "failing at start as asked"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not carry the daemon's log (%q)", err, want)
	}
}

func TestStopDrainsAndRemovesState(t *testing.T) {
	f := newFixture(t, "[cache]\nmax_size = \"5GB\"\n")
	s := f.mustEnsure().State
	if err := Stop(f.root, s, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if s.Alive() {
		t.Fatal("daemon alive after Stop")
	}
	if _, err := Read(f.root, s.ID); !errors.Is(err, ErrNoState) {
		t.Fatalf("state after Stop: %v", err)
	}
}
