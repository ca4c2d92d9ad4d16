package tengo

import (
	"bytes"
	"context"
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
	t   *testing.T
	dir string
	b   *backend.Local
}

func newEnv(t *testing.T) *env {
	return &env{t: t, dir: t.TempDir(),
		b: &backend.Local{Cache: cachetest.New(t), Ledger: backend.OpenLedger(filepath.Join(t.TempDir(), "l.jsonl")), Name: "test"}}
}

func (e *env) write(name, content string) {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(e.dir, name))
	return string(b)
}

type result struct {
	code           int
	err            error
	stdout, stderr string
	log            string
	statuses       []string
	elapsed        time.Duration
}

var lineRE = regexp.MustCompile(`Cache key: tengo-[0-9a-f]{16} \| ([^|]+) \|`)

func (e *env) run(target string, opts Options) result {
	e.t.Helper()
	var out, errb, log bytes.Buffer
	opts.Backend, opts.Stdout, opts.Stderr, opts.Log = e.b, &out, &errb, &log
	start := time.Now()
	code, err := Run(context.Background(), filepath.Join(e.dir, "build.recipe.tengo"), target, nil, opts)
	r := result{code: code, err: err, stdout: out.String(), stderr: errb.String(), log: log.String(), elapsed: time.Since(start)}
	for _, m := range lineRE.FindAllStringSubmatch(r.log, -1) {
		r.statuses = append(r.statuses, strings.TrimSpace(m[1]))
	}
	return r
}

func (e *env) mustRun(target string, opts Options) result {
	e.t.Helper()
	r := e.run(target, opts)
	if r.err != nil || r.code != 0 {
		e.t.Fatalf("run %s: %d %v\n%s%s", target, r.code, r.err, r.log, r.stderr)
	}
	return r
}

func (e *env) entries() int {
	e.t.Helper()
	evs, err := e.b.Events(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Kind == "stored" {
			n++
		}
	}
	return n
}

const twoTargets = `
fabrik := import("fabrik")
fmt := import("fmt")

fabrik.recipe({description: "two targets", env: ["RECIPE_MODE"]})

gen := fabrik.target("gen", {description: "generate", inputs: ["src/*.txt"], outputs: ["gen/"]}, func() {
	fmt.println("gen ran")
	fabrik.write_file("runs.log", fabrik.read_file("runs.log") + "gen\n")
	fabrik.write_file("gen/a.txt", fabrik.read_file("src/a.txt") + "+gen")
})

build := fabrik.target("build", {description: "build", deps: ["gen"], outputs: ["dist/out.txt"]}, func() {
	fmt.println("build ran")
	fabrik.write_file("runs.log", fabrik.read_file("runs.log") + "build\n")
	fabrik.write_file("dist/out.txt", fabrik.read_file("gen/a.txt") + "+build")
})

fabrik.default("build")
`

// Two targets, one depending on the other, each cached on its own.
func TestTwoTargetsCachedPerTarget(t *testing.T) {
	e := newEnv(t)
	e.write("build.recipe.tengo", twoTargets)
	e.write("runs.log", "")
	e.write("src/a.txt", "v1")
	if r := e.mustRun("", Options{}); strings.Join(r.statuses, ",") != "MISS ✗,MISS ✗" || r.stdout != "gen ran\nbuild ran\n" {
		t.Fatalf("first: %v %q\n%s", r.statuses, r.stdout, r.log)
	}
	os.RemoveAll(filepath.Join(e.dir, "gen"))
	os.RemoveAll(filepath.Join(e.dir, "dist"))
	r := e.mustRun("", Options{})
	if strings.Join(r.statuses, ",") != "HIT ✓,HIT ✓" {
		t.Fatalf("second: %v\n%s", r.statuses, r.log)
	}
	if r.stdout != "gen ran\nbuild ran\n" {
		t.Fatalf("replayed stdout %q", r.stdout)
	}
	if e.read("dist/out.txt") != "v1+gen+build" || e.read("gen/a.txt") != "v1+gen" {
		t.Fatalf("restored %q %q", e.read("dist/out.txt"), e.read("gen/a.txt"))
	}
	if r := e.mustRun("gen", Options{}); strings.Join(r.statuses, ",") != "HIT ✓" {
		t.Fatalf("gen alone: %v", r.statuses)
	}
	// gen's input changes: gen runs, and build (whose key holds gen's) too.
	e.write("src/a.txt", "v2")
	if r := e.mustRun("build", Options{}); strings.Join(r.statuses, ",") != "MISS ✗,MISS ✗" {
		t.Fatalf("after input change: %v", r.statuses)
	}
	// A recipe-level env change is a miss for every target.
	t.Setenv("RECIPE_MODE", "x")
	if r := e.mustRun("build", Options{}); strings.Join(r.statuses, ",") != "MISS ✗,MISS ✗" {
		t.Fatalf("after env change: %v", r.statuses)
	}
	if got := e.read("runs.log"); got != "gen\nbuild\ngen\nbuild\ngen\nbuild\n" {
		t.Fatalf("runs.log %q", got)
	}
	var out bytes.Buffer
	if _, err := Run(context.Background(), filepath.Join(e.dir, "build.recipe.tengo"), "", nil, Options{DryRun: true, Log: &out}); err != nil || strings.Count(out.String(), "Cache key: tengo-") != 2 {
		t.Fatalf("dry run: %v\n%s", err, out.String())
	}
	targets, err := List(context.Background(), filepath.Join(e.dir, "build.recipe.tengo"), Options{})
	if err != nil || len(targets) != 2 || targets[1] != (TargetInfo{"build", "build", true}) || targets[0].Default {
		t.Fatalf("list: %+v %v", targets, err)
	}
}

// A target that calls another inside its body: the callee is cached on its
// own, and runs once per invocation.
func TestTargetCallingAnother(t *testing.T) {
	e := newEnv(t)
	e.write("build.recipe.tengo", `
fabrik := import("fabrik")
fmt := import("fmt")
a := fabrik.target("a", {outputs: ["a.txt"]}, func() { fmt.println("a"); fabrik.write_file("a.txt", "A") })
b := fabrik.target("b", {}, func() { a(); a(); fmt.println("b") })
fabrik.default("b")
`)
	r := e.mustRun("", Options{})
	if strings.Join(r.statuses, ",") != "MISS ✗,MISS ✗" || r.stdout != "a\nb\n" {
		t.Fatalf("%v %q", r.statuses, r.stdout)
	}
	if r := e.mustRun("a", Options{}); strings.Join(r.statuses, ",") != "HIT ✓" {
		t.Fatalf("a alone: %v", r.statuses)
	}
}

func TestTimeoutStopsARunawayTarget(t *testing.T) {
	for name, body := range map[string]string{
		"loop": `for { x := 1 }`,
		"exec": `fabrik.exec("sleep", ["30"])`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.write("build.recipe.tengo", `
fabrik := import("fabrik")
fabrik.target("spin", {outputs: ["o.txt"]}, func() { fabrik.write_file("o.txt", "x"); `+body+` })
`)
			r := e.run("", Options{Timeout: 300 * time.Millisecond})
			if r.err == nil || !strings.Contains(r.err.Error(), "target spin exceeded its timeout of 300ms") {
				t.Fatalf("err %v", r.err)
			}
			if r.elapsed > 5*time.Second {
				t.Fatalf("took %s to stop", r.elapsed)
			}
			if e.entries() != 0 {
				t.Fatal("a stopped target was stored")
			}
		})
	}
}

func TestAllocationLimitStopsARecipe(t *testing.T) {
	e := newEnv(t)
	e.write("build.recipe.tengo", `
fabrik := import("fabrik")
fabrik.target("grow", {}, func() { a := []; for { a = append(a, "more") } })
`)
	r := e.run("", Options{MaxAllocs: 10_000, Timeout: 20 * time.Second})
	if r.err == nil || !strings.Contains(r.err.Error(), "allocation limit of 10000 objects") {
		t.Fatalf("err %v", r.err)
	}
	if e.entries() != 0 {
		t.Fatal("stored")
	}
}

func TestOSModuleOnlyWhenAllowed(t *testing.T) {
	e := newEnv(t)
	e.write("build.recipe.tengo", `
fabrik := import("fabrik")
os := import("os")
fabrik.target("t", {cache: false}, func() { fabrik.write_file("host.txt", os.getenv("HOME")) })
`)
	r := e.run("", Options{})
	if r.err == nil || !strings.Contains(r.err.Error(), "module 'os' not found") {
		t.Fatalf("os imported by default: %v", r.err)
	}
	e.mustRun("", Options{AllowOS: true})
	if e.read("host.txt") != os.Getenv("HOME") {
		t.Fatal("os module did not work when allowed")
	}
}

func TestExecResultsAreExact(t *testing.T) {
	e := newEnv(t)
	e.write("build.recipe.tengo", `
fabrik := import("fabrik")
text := import("text")
fabrik.target("t", {cache: false}, func() {
	r := fabrik.exec("sh", ["-c", "printf 'line1\\n  two  \\n'; printf 'warn' >&2; exit 7"])
	fabrik.write_file("out", r.stdout)
	fabrik.write_file("err", r.stderr)
	fabrik.write_file("code", text.itoa(r.exit_code))
	s := fabrik.shell("echo $0 | tr a-z A-Z; exit 0")
	fabrik.write_file("shell", s.stdout + text.itoa(s.exit_code))
	m := fabrik.exec("/nonexistent/tool")
	fabrik.write_file("missing", is_error(m) ? "error" : "no error")
})
`)
	e.mustRun("", Options{})
	for f, want := range map[string]string{"out": "line1\n  two  \n", "err": "warn", "code": "7", "shell": "/BIN/SH\n0", "missing": "error"} {
		if got := e.read(f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
}

func TestFabrikModule(t *testing.T) {
	e := newEnv(t)
	e.write("in/a.txt", "hello")
	e.write("in/sub/b.txt", "x")
	e.write("build.recipe.tengo", `
fabrik := import("fabrik")
json := import("json")
fabrik.target("t", {cache: false}, func() {
	had := fabrik.cache.has("greeting")
	fabrik.cache.put("greeting", "hi there")
	c := fabrik.config()
	fabrik.write_file("result.json", json.encode({
		had: had, has: fabrik.cache.has("greeting"), got: fabrik.cache.get("greeting"),
		missing: fabrik.cache.get("nope"), glob: fabrik.glob("in/**/*.txt"),
		hash: fabrik.hash_file("in/a.txt"), exists: fabrik.exists("in/a.txt"), not_exists: fabrik.exists("zz"),
		dir: c.recipe_dir, cache_dir: c.cache_dir, args: fabrik.args()
	}))
	fabrik.log("logged", 42)
})
`)
	r := e.mustRun("", Options{Config: map[string]any{"cache_dir": "/c"}})
	got := e.read("result.json")
	for _, want := range []string{`"had":false`, `"has":true`, `"got":"hi there"`, `"glob":["in/a.txt","in/sub/b.txt"]`,
		`"hash":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"`, `"exists":true`, `"not_exists":false`, `"cache_dir":"/c"`, `"args":[]`} {
		if !strings.Contains(got, want) {
			t.Errorf("result lacks %s: %s", want, got)
		}
	}
	if !strings.Contains(r.stderr, "[fabrik] logged 42\n") {
		t.Errorf("log: %q", r.stderr)
	}
}

func TestFailingTargetIsNotCachedAndStopsTheChain(t *testing.T) {
	e := newEnv(t)
	e.write("build.recipe.tengo", `
fabrik := import("fabrik")
fabrik.target("dep", {}, func() { return error("broken") })
fabrik.target("top", {deps: ["dep"]}, func() { fabrik.write_file("top.txt", "ran") })
fabrik.default("top")
`)
	r := e.run("", Options{})
	if r.err == nil || !strings.Contains(r.err.Error(), "target dep failed: \"broken\"") {
		t.Fatalf("err %v", r.err)
	}
	if e.read("top.txt") != "" || e.entries() != 0 {
		t.Fatal("the chain went on, or a failure was stored")
	}
}

func TestMalformedRecipes(t *testing.T) {
	for src, want := range map[string]string{
		`fabrik := import("fabrik"); fabrik.target("t", {inptus: []}, func() {})`:                                                                     `unknown metadata key "inptus"`,
		`fabrik := import("fabrik"); fabrik.target("t", {}, func() {}); fabrik.target("u", {}, func() {})`:                                            "no target given and no default",
		`fabrik := import("fabrik"); fabrik.target("a", {deps: ["b"]}, func() {}); fabrik.target("b", {deps: ["a"]}, func() {}); fabrik.default("a")`: "target cycle: a -> b -> a",
		`fabrik := import("fabrik"); fabrik.target("t", {outputs: ["../x"]}, func() {})`:                                                              "must be a path inside",
	} {
		e := newEnv(t)
		e.write("build.recipe.tengo", src)
		r := e.run("", Options{})
		if r.err == nil || !strings.Contains(r.err.Error(), want) {
			t.Errorf("%s: err %v, want %q", src, r.err, want)
		}
	}
}

// Recipe-level outputs belong to the default target; a recipe without
// targets just runs its top level.
func TestRecipeLevelOutputsAndTargetlessRecipes(t *testing.T) {
	e := newEnv(t)
	e.write("build.recipe.tengo", `
fabrik := import("fabrik")
fabrik.recipe({outputs: ["dist/app.txt"], cache_ttl: "7d"})
fabrik.target("prep", {outputs: ["prep.txt"]}, func() { fabrik.write_file("prep.txt", "p") })
fabrik.target("app", {deps: ["prep"]}, func() { fabrik.write_file("dist/app.txt", "a") })
fabrik.default("app")
`)
	e.mustRun("", Options{})
	os.RemoveAll(filepath.Join(e.dir, "dist"))
	if r := e.mustRun("", Options{}); strings.Join(r.statuses, ",") != "HIT ✓,HIT ✓" || e.read("dist/app.txt") != "a" {
		t.Fatalf("%v %q\n%s", r.statuses, e.read("dist/app.txt"), r.log)
	}
	e.write("build.recipe.tengo", `fabrik := import("fabrik"); fabrik.write_file("top.txt", "ran")`)
	if r := e.mustRun("", Options{}); len(r.statuses) != 0 || e.read("top.txt") != "ran" {
		t.Fatalf("targetless recipe: %v %q", r.statuses, e.read("top.txt"))
	}
}
