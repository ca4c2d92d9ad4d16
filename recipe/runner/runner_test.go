package runner

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/recipe/backend"
)

type env struct {
	t       *testing.T
	dir     string
	backend *backend.Local
	vars    map[string]string
}

func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	return &env{t: t, dir: dir, vars: map[string]string{},
		backend: &backend.Local{Cache: cachetest.New(t), Ledger: backend.OpenLedger(filepath.Join(t.TempDir(), "ledger.jsonl")), Name: "test cache"}}
}

func (e *env) write(name, content string, mode fs.FileMode) {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(e.dir, name))
	return string(b)
}

type result struct {
	exit           int
	err            error
	stdout, stderr string
	log            string
	keys           []string
	statuses       []string
}

var lineRE = regexp.MustCompile(`\[fabrik\] Cache key: (script-[0-9a-f]{16}) \| ([^|]+) \| \d+\.\d\ds \(exit: (\d+)\)`)

func (e *env) run(ctx context.Context, script string, opts Options, so ScriptOptions) result {
	e.t.Helper()
	var out, errb, log bytes.Buffer
	opts.Backend, opts.Stdout, opts.Stderr, opts.Log = e.backend, &out, &errb, &log
	opts.Getenv = func(n string) (string, bool) { v, ok := e.vars[n]; return v, ok }
	opts.Env = os.Environ()
	for k, v := range e.vars {
		opts.Env = append(opts.Env, k+"="+v)
	}
	exit, err := New(opts).RunScript(ctx, filepath.Join(e.dir, script), so)
	r := result{exit: exit, err: err, stdout: out.String(), stderr: errb.String(), log: log.String()}
	for _, m := range lineRE.FindAllStringSubmatch(r.log, -1) {
		r.keys = append(r.keys, m[1])
		r.statuses = append(r.statuses, strings.TrimSpace(m[2]))
	}
	return r
}

func (e *env) mustRun(script string, opts Options, so ScriptOptions) result {
	e.t.Helper()
	r := e.run(context.Background(), script, opts, so)
	if r.err != nil || r.exit != 0 {
		e.t.Fatalf("run %s: exit %d, err %v\n%s%s", script, r.exit, r.err, r.log, r.stderr)
	}
	return r
}

func statuses(r result) string { return strings.Join(r.statuses, ",") }

// A chain of three scripts: changing one input re-runs only that script
// and its dependents; the others are hits.
func TestChainRerunsOnlyWhatChanged(t *testing.T) {
	e := newEnv(t)
	e.write("a.in", "A1", 0o644)
	e.write("b.in", "B1", 0o644)
	e.write("c.in", "C1", 0o644)
	e.write("a.sh", "#!/bin/sh\n#FABRIK input \"a.in\"\n#FABRIK output \"out/a\"\necho a >> runs.log\nmkdir -p out && cat a.in > out/a\n", 0o755)
	e.write("b.sh", "#!/bin/sh\n#FABRIK input \"b.in\"\n#FABRIK depends \"a.sh\" use-outputs=#true\n#FABRIK output \"out/b\"\necho b >> runs.log\ncat out/a b.in > out/b\n", 0o755)
	e.write("c.sh", "#!/bin/sh\n#FABRIK input \"c.in\"\n#FABRIK depends \"b.sh\" use-outputs=#true\n#FABRIK output \"out/c\"\necho c >> runs.log\ncat out/b c.in > out/c\n", 0o755)

	if r := e.mustRun("c.sh", Options{}, ScriptOptions{}); statuses(r) != "MISS ✗,MISS ✗,MISS ✗" {
		t.Fatalf("first run: %s\n%s", statuses(r), r.log)
	}
	if got := e.read("out/c"); got != "A1B1C1" {
		t.Fatalf("out/c = %q", got)
	}
	if r := e.mustRun("c.sh", Options{}, ScriptOptions{}); statuses(r) != "HIT ✓,HIT ✓,HIT ✓" {
		t.Fatalf("second run: %s\n%s", statuses(r), r.log)
	}
	e.write("b.in", "B2", 0o644)
	if r := e.mustRun("c.sh", Options{}, ScriptOptions{}); statuses(r) != "HIT ✓,MISS ✗,MISS ✗" {
		t.Fatalf("after changing b.in: %s\n%s", statuses(r), r.log)
	}
	if got, want := e.read("runs.log"), "a\nb\nc\nb\nc\n"; got != want {
		t.Fatalf("runs.log = %q, want %q", got, want)
	}
	if got := e.read("out/c"); got != "A1B2C1" {
		t.Fatalf("out/c = %q", got)
	}
	// Only c's input changed: a and b are hits.
	e.write("c.in", "C2", 0o644)
	if r := e.mustRun("c.sh", Options{}, ScriptOptions{}); statuses(r) != "HIT ✓,HIT ✓,MISS ✗" {
		t.Fatalf("after changing c.in: %s", statuses(r))
	}
}

func TestEnvChangeIsAMiss(t *testing.T) {
	e := newEnv(t)
	e.write("s.sh", "#!/bin/sh\n#FABRIK env \"MODE\"\necho mode=$MODE\n", 0o755)
	e.vars["MODE"] = "dev"
	r1 := e.mustRun("s.sh", Options{}, ScriptOptions{})
	r2 := e.mustRun("s.sh", Options{}, ScriptOptions{})
	e.vars["MODE"] = "prod"
	r3 := e.mustRun("s.sh", Options{}, ScriptOptions{})
	if statuses(r1)+statuses(r2)+statuses(r3) != "MISS ✗HIT ✓MISS ✗" {
		t.Fatalf("%s %s %s", statuses(r1), statuses(r2), statuses(r3))
	}
	if r2.stdout != "mode=dev\n" || r3.stdout != "mode=prod\n" {
		t.Fatalf("stdout %q / %q", r2.stdout, r3.stdout)
	}
	if r1.keys[0] == r3.keys[0] {
		t.Fatal("same key for different env values")
	}
}

func TestDryRunKeyEqualsRunKey(t *testing.T) {
	e := newEnv(t)
	e.write("in/x.txt", "x", 0o644)
	e.write("s.sh", "#!/bin/sh\n#FABRIK input \"in/**\"\n#FABRIK output \"o.txt\"\necho ran > ran.txt\necho o > o.txt\n", 0o755)
	dry := e.mustRun("s.sh", Options{DryRun: true}, ScriptOptions{Args: []string{"--x"}})
	if _, err := os.Stat(filepath.Join(e.dir, "ran.txt")); err == nil {
		t.Fatal("--dry-run ran the script")
	}
	m := regexp.MustCompile(`Cache key: (script-[0-9a-f]{16}) \(`).FindStringSubmatch(dry.log)
	if m == nil || !strings.Contains(dry.log, "input             in/x.txt sha256:") {
		t.Fatalf("dry run output:\n%s", dry.log)
	}
	run := e.mustRun("s.sh", Options{}, ScriptOptions{Args: []string{"--x"}})
	if len(run.keys) != 1 || run.keys[0] != m[1] {
		t.Fatalf("dry-run key %s, run key %v", m[1], run.keys)
	}
}

type entry struct {
	mode    fs.FileMode
	content string
}

func snapshot(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		en := entry{mode: fi.Mode()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			en.content, _ = os.Readlink(p)
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			en.content = string(b)
		}
		out[rel] = en
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A hit restores the outputs byte for byte, with modes, symlinks and empty
// directories, without running the script, and replays its output.
func TestHitRestoresOutputsExactly(t *testing.T) {
	e := newEnv(t)
	e.write("gen.sh", `#!/bin/sh
#FABRIK output "out"
#FABRIK output "single.bin"
echo run >> runs.log
mkdir -p out/bin out/empty out/nested/deeper
printf '#!/bin/sh\necho tool\n' > out/bin/tool && chmod 755 out/bin/tool
printf 'secret' > out/private && chmod 600 out/private
head -c 100000 /dev/urandom > out/nested/deeper/blob
ln -s bin/tool out/link
ln -s ../missing out/dangling
chmod 700 out/nested
head -c 5000 /dev/urandom > single.bin && chmod 640 single.bin
echo to-stdout; echo to-stderr >&2
`, 0o755)
	first := e.mustRun("gen.sh", Options{}, ScriptOptions{})
	want, wantSingle := snapshot(t, filepath.Join(e.dir, "out")), snapshot(t, filepath.Join(e.dir, "single.bin"))
	os.RemoveAll(filepath.Join(e.dir, "out"))
	os.Remove(filepath.Join(e.dir, "single.bin"))
	// A stale file inside an output is not part of the restore.
	e.write("out/stale", "old", 0o644)

	hit := e.mustRun("gen.sh", Options{}, ScriptOptions{})
	if statuses(first) != "MISS ✗" || statuses(hit) != "HIT ✓" {
		t.Fatalf("statuses %s then %s", statuses(first), statuses(hit))
	}
	if e.read("runs.log") != "run\n" {
		t.Fatalf("the script ran on a hit: %q", e.read("runs.log"))
	}
	got, gotSingle := snapshot(t, filepath.Join(e.dir, "out")), snapshot(t, filepath.Join(e.dir, "single.bin"))
	if len(got) != len(want) {
		t.Fatalf("restored %d entries, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s: restored %v (%d bytes), want %v (%d bytes)", k, g.mode, len(g.content), w.mode, len(w.content))
		}
	}
	if gotSingle["."] != wantSingle["."] {
		t.Errorf("single.bin: %v, want %v", gotSingle["."].mode, wantSingle["."].mode)
	}
	if hit.stdout != "to-stdout\n" || hit.stderr != "to-stderr\n" {
		t.Fatalf("replayed stdout %q stderr %q", hit.stdout, hit.stderr)
	}
}

func has(t *testing.T, e *env, key string) bool {
	t.Helper()
	_, found, err := e.backend.Has(context.Background(), backend.Runs, key+".run")
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func keyOf(t *testing.T, e *env, script string) string {
	t.Helper()
	_, k, err := New(Options{Getenv: func(n string) (string, bool) { v, ok := e.vars[n]; return v, ok }}).Key(filepath.Join(e.dir, script), nil)
	if err != nil {
		t.Fatal(err)
	}
	return k.Hex
}

// A run stopped mid-way (the CLI's context cancelled, as on SIGINT or
// SIGTERM) stores nothing, even though the outputs were already written.
func TestStoppedRunStoresNothing(t *testing.T) {
	e := newEnv(t)
	e.write("slow.sh", "#!/bin/sh\n#FABRIK output \"o.txt\"\necho partial > o.txt\nsleep 30\n", 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for i := 0; i < 200; i++ {
			if _, err := os.Stat(filepath.Join(e.dir, "o.txt")); err == nil {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	r := e.run(ctx, "slow.sh", Options{}, ScriptOptions{})
	if r.err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("run: exit %d err %v after %s", r.exit, r.err, time.Since(start))
	}
	if has(t, e, keyOf(t, e, "slow.sh")) {
		t.Fatal("a stopped run was cached")
	}
}

// A script killed by a signal, failing, or over its exec timeout is
// reported and not cached.
func TestFailuresAreNotCached(t *testing.T) {
	for name, c := range map[string]struct {
		body string
		exit int
	}{
		"killed":  {"kill -9 $$\n", 137},
		"fails":   {"echo bad >&2; exit 3\n", 3},
		"timeout": {"#FABRIK exec timeout=\"300ms\"\nsleep 20\n", ExitTimeout},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.write("s.sh", "#!/bin/sh\n"+c.body, 0o755)
			r := e.run(context.Background(), "s.sh", Options{}, ScriptOptions{})
			if r.exit != c.exit {
				t.Fatalf("exit %d, want %d (err %v)\n%s", r.exit, c.exit, r.err, r.log)
			}
			if has(t, e, keyOf(t, e, "s.sh")) {
				t.Fatal("cached")
			}
			if !strings.Contains(r.log, "MISS ✗") {
				t.Fatalf("no run line:\n%s", r.log)
			}
		})
	}
}

func TestDependencyCycleIsNamed(t *testing.T) {
	e := newEnv(t)
	e.write("a.sh", "#!/bin/sh\n#FABRIK depends \"b.sh\"\n", 0o755)
	e.write("b.sh", "#!/bin/sh\n#FABRIK depends \"c.sh\"\n", 0o755)
	e.write("c.sh", "#!/bin/sh\n#FABRIK depends \"a.sh\"\n", 0o755)
	t.Chdir(e.dir)
	r := e.run(context.Background(), "a.sh", Options{}, ScriptOptions{})
	if r.err == nil || !strings.Contains(r.err.Error(), "dependency cycle: a.sh -> b.sh -> c.sh -> a.sh") {
		t.Fatalf("err %v", r.err)
	}
}

func TestDependencyFailureStopsTheChain(t *testing.T) {
	e := newEnv(t)
	e.write("dep.sh", "#!/bin/sh\nexit 4\n", 0o755)
	e.write("top.sh", "#!/bin/sh\n#FABRIK depends \"dep.sh\"\necho top > top.txt\n", 0o755)
	r := e.run(context.Background(), "top.sh", Options{}, ScriptOptions{})
	if r.exit != 4 {
		t.Fatalf("exit %d", r.exit)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "top.txt")); err == nil {
		t.Fatal("top.sh ran after its dependency failed")
	}
}

func TestNoCacheDisableCleanAndTTL(t *testing.T) {
	e := newEnv(t)
	e.write("s.sh", "#!/bin/sh\necho x >> runs.log\n", 0o755)
	if r := e.mustRun("s.sh", Options{NoCache: true}, ScriptOptions{}); statuses(r) != "DISABLED" {
		t.Fatal(statuses(r))
	}
	if has(t, e, keyOf(t, e, "s.sh")) {
		t.Fatal("--no-cache stored an entry")
	}
	e.mustRun("s.sh", Options{}, ScriptOptions{})
	if r := e.mustRun("s.sh", Options{}, ScriptOptions{Clean: true}); statuses(r) != "MISS ✗" {
		t.Fatalf("--clean: %s", statuses(r))
	}
	if r := e.mustRun("s.sh", Options{NoCache: true}, ScriptOptions{}); statuses(r) != "DISABLED" {
		t.Fatalf("--no-cache with an entry: %s", statuses(r))
	}
	if got := strings.Count(e.read("runs.log"), "x"); got != 4 {
		t.Fatalf("ran %d times, want 4", got)
	}

	e.write("off.sh", "#!/bin/sh\n#FABRIK cache disable\necho x\n", 0o755)
	e.mustRun("off.sh", Options{}, ScriptOptions{})
	if r := e.mustRun("off.sh", Options{}, ScriptOptions{}); statuses(r) != "DISABLED" || has(t, e, keyOf(t, e, "off.sh")) {
		t.Fatalf("cache disable: %s", statuses(r))
	}

	e.write("ttl.sh", "#!/bin/sh\n#FABRIK cache ttl=\"1s\"\necho x\n", 0o755)
	e.mustRun("ttl.sh", Options{}, ScriptOptions{})
	if r := e.mustRun("ttl.sh", Options{}, ScriptOptions{}); statuses(r) != "HIT ✓" {
		t.Fatalf("within ttl: %s", statuses(r))
	}
	time.Sleep(1100 * time.Millisecond)
	if r := e.mustRun("ttl.sh", Options{}, ScriptOptions{}); statuses(r) != "MISS ✗" {
		t.Fatalf("after ttl: %s", statuses(r))
	}
}

func TestRuntimeArgsShellCwdAndVersion(t *testing.T) {
	e := newEnv(t)
	e.write("sub/keep", "", 0o644)
	e.write("s.sh", "#!/bin/sh\n#FABRIK runtime bash\n#FABRIK runtime-arg \"--norc\"\n#FABRIK runtime-version\n#FABRIK exec cwd=\"sub\"\n#FABRIK exec shell\necho \"$BASH_VERSION|$(basename \"$PWD\")|$1|$2\"\n", 0o755)
	calls := 0
	opts := Options{RuntimeVersion: func(rt string) (string, error) { calls++; return rt + " 9.9", nil }}
	r := e.mustRun("s.sh", opts, ScriptOptions{Args: []string{"a b", "c"}})
	if !strings.HasSuffix(r.stdout, "|sub|a b|c\n") || strings.HasPrefix(r.stdout, "|") {
		t.Fatalf("stdout %q", r.stdout)
	}
	if calls == 0 {
		t.Fatal("runtime-version did not ask the runtime")
	}
	k1 := r.keys[0]
	opts.RuntimeVersion = func(rt string) (string, error) { return rt + " 10.0", nil }
	if r := e.mustRun("s.sh", opts, ScriptOptions{Args: []string{"a b", "c"}}); r.keys[0] == k1 || statuses(r) != "MISS ✗" {
		t.Fatal("a new runtime version kept the key")
	}
}

func TestDevNullIsNotATerminal(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) || isTerminal(nil) || isTerminal(strings.NewReader("")) {
		t.Fatal("/dev/null, nil or a reader taken for a terminal")
	}
}
