package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// recipeEnv is the environment of a `fabrik-node run` that must not find a
// daemon of the developer's (FABRIK_HTTP_URL empty) and keeps its cache in
// cacheDir when it opens the node in-process.
func recipeEnv(cacheDir string, extra ...string) []string {
	return append([]string{"FABRIK_HTTP_URL=", "FABRIK_CONFIG_CACHE_DIR=" + cacheDir, "FABRIK_CONFIG_PATH="}, extra...)
}

func fabrikRun(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := harness.Run(t, dir, env, harness.BuildBinary(t), args...)
	if err != nil {
		t.Fatalf("fabrik-node %v: %v\n%s", args, err, out)
	}
	return out
}

// genProject is a project with a script whose outputs hold every kind of
// entry a restore must reproduce, and which counts its runs outside them.
func genProject(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "project")
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "src", "input.txt"), []byte("input v1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "gen.sh"), []byte(`#!/bin/sh
#FABRIK input "src/**"
#FABRIK output "out"
echo ran >> runs.log
mkdir -p out/bin out/empty
cp src/input.txt out/copy.txt
printf '#!/bin/sh\necho tool\n' > out/bin/tool && chmod 750 out/bin/tool
head -c 300000 /dev/urandom > out/blob
ln -s bin/tool out/link
echo "generated out/"
`), 0o755)
	return dir
}

// treeOf records every entry under root: mode, and content or link target.
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		v := fi.Mode().String()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += fmt.Sprintf(" %d %x", len(b), b[:min(len(b), 64)])
			if len(b) > 64 {
				v += fmt.Sprintf(" %x", b[len(b)-64:])
			}
		}
		out[rel] = v
		return nil
	})
	return out
}

func sameTree(t *testing.T, a, b map[string]string) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("trees differ: %d vs %d entries\n%v\n%v", len(a), len(b), a, b)
	}
	for k, v := range a {
		if b[k] != v {
			t.Fatalf("%s: %q vs %q", k, v, b[k])
		}
	}
}

// Two machines, each with its own edge and cache directory, share a
// regional: machine B restores what machine A ran, byte for byte with
// modes and symlinks, without running the script. The CLI talks to each
// edge over HTTP (FABRIK_HTTP_URL, as the daemon's activation exports it).
func TestRecipeTwoMachinesThroughEdges(t *testing.T) {
	t.Parallel()
	regional := harness.StartNode(t, []string{"--role", "regional"}, nil)
	upstream := harness.NodeOptions{ExtraTOML: fmt.Sprintf("[[upstream]]\nurl = %q\n", "grpc://"+regional.FabrikAddr)}
	edgeA := harness.StartNodeWith(t, upstream)
	edgeB := harness.StartNodeWith(t, upstream)

	dirA := genProject(t)
	out := fabrikRun(t, dirA, recipeEnv(t.TempDir(), "FABRIK_HTTP_URL="+edgeA.HTTPURL()), "run", "--verbose", "gen.sh")
	mustContain(t, out, "MISS ✗", "generated out/", "edge "+edgeA.HTTPURL())
	if !waitFor(30*time.Second, func() bool { return scrape(t, regional, "")["fabrik_cache_objects"] >= 2 }) {
		t.Fatalf("the regional never received the recipe entry\nedge A log:\n%s", edgeA.Logs())
	}

	dirB := genProject(t)
	out = fabrikRun(t, dirB, recipeEnv(t.TempDir(), "FABRIK_HTTP_URL="+edgeB.HTTPURL()), "run", "gen.sh")
	mustContain(t, out, "HIT ✓", "generated out/")
	if _, err := os.Stat(filepath.Join(dirB, "runs.log")); err == nil {
		t.Fatal("machine B ran the script")
	}
	sameTree(t, treeOf(t, filepath.Join(dirA, "out")), treeOf(t, filepath.Join(dirB, "out")))
	if hits := scrape(t, edgeB, "").hitsOf("recipes"); hits < 2 {
		t.Fatalf(`edge B: hits{build_system="recipes"} = %v, want >= 2`, hits)
	}
	out = fabrikRun(t, dirB, recipeEnv(t.TempDir(), "FABRIK_HTTP_URL="+edgeB.HTTPURL()), "cache", "stats")
	mustContain(t, out, "entries: 1", "hits: 1")
}

// The CI case: no daemon, only fabrik.toml naming an upstream. Each
// `fabrik-node run` opens the config's node in-process, writes through
// to the regional before it exits, and the other machine hits.
func TestRecipeTwoMachinesInProcess(t *testing.T) {
	t.Parallel()
	regional := harness.StartNode(t, []string{"--role", "regional"}, nil)
	machine := func() string {
		dir := genProject(t)
		toml := fmt.Sprintf("[cache]\ndir = %q\n\n[[upstream]]\nurl = %q\n", filepath.Join(t.TempDir(), "cache"), "grpc://"+regional.FabrikAddr)
		os.WriteFile(filepath.Join(dir, "fabrik.toml"), []byte(toml), 0o644)
		return dir
	}
	env := []string{"FABRIK_HTTP_URL=", "FABRIK_CONFIG_PATH="}
	dirA, dirB := machine(), machine()
	mustContain(t, fabrikRun(t, dirA, env, "run", "gen.sh"), "MISS ✗")
	// No waiting here: the in-process node drains its uploads before exit.
	out := fabrikRun(t, dirB, env, "run", "gen.sh")
	mustContain(t, out, "HIT ✓", "generated out/")
	if _, err := os.Stat(filepath.Join(dirB, "runs.log")); err == nil {
		t.Fatal("machine B ran the script")
	}
	sameTree(t, treeOf(t, filepath.Join(dirA, "out")), treeOf(t, filepath.Join(dirB, "out")))

	// An input change on B is a miss there, and only there.
	os.WriteFile(filepath.Join(dirB, "src", "input.txt"), []byte("input v2\n"), 0o644)
	mustContain(t, fabrikRun(t, dirB, env, "run", "gen.sh"), "MISS ✗")
	mustContain(t, fabrikRun(t, dirA, env, "run", "gen.sh"), "HIT ✓")
}

// A run killed mid-way stores nothing: by SIGTERM (the CLI stops the
// script and exits) and by SIGKILL (the CLI dies before storing).
func TestRecipeKilledMidRunStoresNothing(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "slow.sh"), []byte("#!/bin/sh\n#FABRIK output \"o.txt\"\necho partial > o.txt\necho $$ > pid\nexec sleep 30\n"), 0o755)
			env := recipeEnv(filepath.Join(t.TempDir(), "cache"))
			cmd := exec.Command(harness.BuildBinary(t), "run", "slow.sh")
			cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var pid int
			if !waitFor(20*time.Second, func() bool {
				b, err := os.ReadFile(filepath.Join(dir, "pid"))
				pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
				return err == nil && pid > 0
			}) {
				cmd.Process.Kill()
				t.Fatalf("the script never started\n%s", out.String())
			}
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("fabrik-node exited 0 after %v\n%s", sig, out.String())
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("fabrik-node did not exit after %v", sig)
			}
			if sig == syscall.SIGTERM && syscall.Kill(pid, 0) == nil {
				t.Fatal("the script outlived fabrik-node's SIGTERM")
			}
			syscall.Kill(pid, syscall.SIGKILL)
			status := fabrikRun(t, dir, env, "cache", "status", "slow.sh")
			mustContain(t, status, "cached: no")
		})
	}
}

// The README's two recipe examples, exactly as printed there, run: a miss,
// then a hit that restores the outputs without running anything.
func TestRecipeReadmeExamples(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"build.sh", "build.recipe.tengo"} {
		b, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), "e2e", "testdata", "recipes", "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(readme, b) {
			t.Errorf("README.md does not show e2e/testdata/recipes/examples/%s verbatim", f)
		}
	}
	dir := harness.CopyFixture(t, "recipes/examples")
	env := recipeEnv(filepath.Join(t.TempDir(), "cache"), "SITE_TITLE=Handbook")

	dry := fabrikRun(t, dir, env, "run", "--dry-run", "build.sh")
	key := regexp.MustCompile(`Cache key: (script-[0-9a-f]{16}) \(build.sh\)`).FindStringSubmatch(dry)
	if key == nil {
		t.Fatalf("dry run:\n%s", dry)
	}
	mustContain(t, fabrikRun(t, dir, env, "run", "build.sh"), "Cache key: "+key[1]+" | MISS ✗", "built site/index.md")
	page, _ := os.ReadFile(filepath.Join(dir, "site", "index.md"))
	os.RemoveAll(filepath.Join(dir, "site"))
	mustContain(t, fabrikRun(t, dir, env, "run", "build.sh"), "HIT ✓", "built site/index.md")
	if again, _ := os.ReadFile(filepath.Join(dir, "site", "index.md")); !bytes.Equal(page, again) || !bytes.HasPrefix(page, []byte("# Handbook\n")) {
		t.Fatalf("restored page %q, built %q", again, page)
	}

	mustContain(t, fabrikRun(t, dir, env, "cache", "list"), "build.sh")
	mustContain(t, fabrikRun(t, dir, env, "cache", "status", "build.sh"), "cached: yes")
	mustContain(t, fabrikRun(t, dir, env, "cache", "clean", "build.sh"), "cleaned script-")
	mustContain(t, fabrikRun(t, dir, env, "cache", "status", "build.sh"), "cached: no")
	mustContain(t, fabrikRun(t, dir, env, "run", "build.sh"), "MISS ✗")

	mustContain(t, fabrikRun(t, dir, env, "run", "--list", "build.recipe.tengo"), "page (default)", "toc", "Table of contents")
	out := fabrikRun(t, dir, env, "run", "build.recipe.tengo")
	if strings.Count(out, "MISS ✗") != 2 {
		t.Fatalf("first Tengo run:\n%s", out)
	}
	os.RemoveAll(filepath.Join(dir, "site"))
	out = fabrikRun(t, dir, env, "run", "build.recipe.tengo")
	if strings.Count(out, "HIT ✓") != 2 || !strings.Contains(out, "built site/page.md") {
		t.Fatalf("second Tengo run:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "site", "page.md")); !bytes.HasPrefix(b, []byte("# Contents\n- docs/intro.md\n- docs/usage.md\n## Intro")) {
		t.Fatalf("page.md = %q", b)
	}
	mustContain(t, fabrikRun(t, dir, env, "run", "--dry-run", "build.recipe.tengo", "toc"), "Cache key: tengo-")
}

// Malformed annotations stop the run with file:line, and nothing runs.
func TestRecipeMalformedAnnotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.sh"), []byte("#!/bin/sh\n#FABRIK input \"a\"\n#FABRIK outptu \"x\"\ntouch ran\n"), 0o755)
	out, err := harness.Run(t, dir, recipeEnv(filepath.Join(t.TempDir(), "cache")), harness.BuildBinary(t), "run", "bad.sh")
	if err == nil || !strings.Contains(out, `bad.sh:3: unknown annotation "outptu"`) {
		t.Fatalf("err %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Fatal("a malformed script ran")
	}
}

// A chain of three scripts on the real binary: changing the middle one's
// input re-runs it and the last, and the first is a hit; an env change is a
// miss.
func TestRecipeChainAndEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755)
	}
	write("a.in", "A")
	write("b.in", "B1")
	write("a.sh", "#!/bin/sh\n#FABRIK input \"a.in\"\n#FABRIK output \"a.out\"\necho a >> runs.log\ncat a.in > a.out\n")
	write("b.sh", "#!/bin/sh\n#FABRIK input \"b.in\"\n#FABRIK depends \"a.sh\" use-outputs=#true\n#FABRIK output \"b.out\"\necho b >> runs.log\ncat a.out b.in > b.out\n")
	write("c.sh", "#!/bin/sh\n#FABRIK env \"FLAVOR\"\n#FABRIK depends \"b.sh\" use-outputs=#true\n#FABRIK output \"c.out\"\necho c >> runs.log\n{ cat b.out; echo \"$FLAVOR\"; } > c.out\n")
	cacheDir := filepath.Join(t.TempDir(), "cache")
	env := recipeEnv(cacheDir, "FLAVOR=plain")
	statuses := func(out string) string {
		var s []string
		for _, l := range strings.Split(out, "\n") {
			if i := strings.Index(l, "| "); i >= 0 && strings.Contains(l, "Cache key: script-") {
				s = append(s, strings.Fields(l[i+2:])[0])
			}
		}
		return strings.Join(s, ",")
	}
	if got := statuses(fabrikRun(t, dir, env, "run", "c.sh")); got != "MISS,MISS,MISS" {
		t.Fatalf("first run: %s", got)
	}
	if got := statuses(fabrikRun(t, dir, env, "run", "c.sh")); got != "HIT,HIT,HIT" {
		t.Fatalf("second run: %s", got)
	}
	write("b.in", "B2")
	if got := statuses(fabrikRun(t, dir, env, "run", "c.sh")); got != "HIT,MISS,MISS" {
		t.Fatalf("after changing b.in: %s", got)
	}
	env = recipeEnv(cacheDir, "FLAVOR=spicy")
	if got := statuses(fabrikRun(t, dir, env, "run", "c.sh")); got != "HIT,HIT,MISS" {
		t.Fatalf("after changing FLAVOR: %s", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "runs.log")); string(b) != "a\nb\nc\nb\nc\nc\n" {
		t.Fatalf("runs.log = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "c.out")); string(b) != "AB2spicy\n" {
		t.Fatalf("c.out = %q", b)
	}
}
