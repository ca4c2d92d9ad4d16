package script

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, src string) (*Script, error) {
	t.Helper()
	return Parse("build.sh", "/p/build.sh", []byte(src))
}

func TestParseEveryAnnotation(t *testing.T) {
	s, err := parse(t, `#!/usr/bin/env -S fabrik run bash -e
#FABRIK input "src/**/*.ts"
#FABRIK input "package.json" hash=mtime
#FABRIK input "big.bin" hash=size
#FABRIK output "dist/"
#FABRIK output "report.txt"
#FABRIK env "NODE_ENV"
#FABRIK depends "./deps.sh" use-outputs=#true
#FABRIK depends "lint.sh"
#FABRIK cache ttl="7d" key="v2"
#FABRIK runtime-arg "--norc"
#FABRIK runtime-version
#FABRIK exec cwd="sub" timeout="5m"
#FABRIK exec shell
echo hi
`)
	if err != nil {
		t.Fatal(err)
	}
	want := &Script{
		Path: "build.sh", Abs: "/p/build.sh", Dir: "/p", Content: s.Content,
		Inputs:  []Input{{"src/**/*.ts", HashContent, 2}, {"package.json", HashMtime, 3}, {"big.bin", HashSize, 4}},
		Outputs: []string{"dist", "report.txt"},
		Env:     []string{"NODE_ENV"},
		Depends: []Depend{{"./deps.sh", true, 8}, {"lint.sh", false, 9}},
		TTL:     7 * 24 * time.Hour, CustomKey: "v2",
		Runtime: "bash", RuntimeArgs: []string{"-e", "--norc"}, RuntimeVersion: true,
		Cwd: "sub", Timeout: 5 * time.Minute, Shell: true,
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}
}

func TestParseRuntimeAnnotationOverridesShebang(t *testing.T) {
	s, err := parse(t, "#!/bin/sh -x\n#FABRIK runtime node\n#FABRIK cache disable\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.Runtime != "node" || len(s.RuntimeArgs) != 0 || !s.CacheDisabled {
		t.Fatalf("%+v", s)
	}
}

// Every malformed annotation is an error naming file and line.
func TestParseErrorsNameFileAndLine(t *testing.T) {
	for _, c := range []struct{ src, msg string }{
		{"#!/bin/sh\n#FABRIK inptu \"x\"\n", `build.sh:2: unknown annotation "inptu"`},
		{"#!/bin/sh\n\n#FABRIK input\n", "build.sh:3: input: missing argument"},
		{"#!/bin/sh\n#FABRIK input \"x\" hash=sha1\n", `build.sh:2: input: hash="sha1"`},
		{"#!/bin/sh\n#FABRIK input \"x\" mode=1\n", `build.sh:2: input: unknown property "mode"`},
		{"#!/bin/sh\n#FABRIK input \"x\n", "build.sh:2: unterminated string"},
		{"#!/bin/sh\n#FABRIK output \"../x\"\n", "build.sh:2: output"},
		{"#!/bin/sh\n#FABRIK input \"/etc/passwd\"\n", "build.sh:2: input \"/etc/passwd\": want a pattern relative"},
		{"#!/bin/sh\n#FABRIK cache ttl=\"soon\"\n", "build.sh:2: cache: ttl="},
		{"#!/bin/sh\n#FABRIK cache forever\n", `build.sh:2: cache: unknown word "forever"`},
		{"#!/bin/sh\n#FABRIK cache\n", "build.sh:2: cache: want"},
		{"#!/bin/sh\n#FABRIK exec timeout=\"-1s\"\n", "build.sh:2: exec: timeout="},
		{"#!/bin/sh\n#FABRIK exec sudo\n", `build.sh:2: exec: unknown word "sudo"`},
		{"#!/bin/sh\n#FABRIK depends \"a.sh\" use-outputs=maybe\n", "build.sh:2: depends: use-outputs"},
		{"#!/bin/sh\n#FABRIK runtime-version now\n", "build.sh:2: runtime-version: too many arguments"},
		{"#!/bin/sh\n#FABRIK env \"A B\"\n", "build.sh:2: env:"},
		{"#!/bin/sh\n#FABRIK\n", "build.sh:2: empty #FABRIK annotation"},
		{"echo no shebang\n", "build.sh:1: no runtime"},
	} {
		_, err := parse(t, c.src)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: error %v, want %q", c.src, err, c.msg)
		}
	}
}

func TestGlobDoubleStarAndDirectories(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"src/a.ts", "src/x/b.ts", "src/x/y/c.ts", "src/x/d.js", "top.ts", "dist/out.js", "dist/sub/deep.js"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	for _, c := range []struct {
		pat  string
		want []string
	}{
		{"src/**/*.ts", []string{"src/a.ts", "src/x/b.ts", "src/x/y/c.ts"}},
		{"**/*.ts", []string{"src/a.ts", "src/x/b.ts", "src/x/y/c.ts", "top.ts"}},
		{"src/*/*.js", []string{"src/x/d.js"}},
		{"dist/", []string{"dist/out.js", "dist/sub/deep.js"}},
		{"dist", []string{"dist/out.js", "dist/sub/deep.js"}},
		{"top.ts", []string{"top.ts"}},
		{"missing/**", nil},
		{"src/x", []string{"src/x/b.ts", "src/x/d.js", "src/x/y/c.ts"}},
	} {
		got, err := Glob(dir, c.pat)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Glob(%q) = %v, want %v", c.pat, got, c.want)
		}
	}
}

func TestKeyChangesWithEachIngredient(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("one"), 0o644)
	src := "#!/bin/sh\n#FABRIK input \"in.txt\"\n#FABRIK env \"MODE\"\n"
	env := map[string]string{"MODE": "a"}
	key := func(src string, args ...string) string {
		s, err := Parse("b.sh", filepath.Join(dir, "b.sh"), []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		k, err := ComputeKey(s, KeyOptions{Args: args, Getenv: func(n string) (string, bool) { v, ok := env[n]; return v, ok }})
		if err != nil {
			t.Fatal(err)
		}
		return k.Hex
	}
	base := key(src)
	if key(src) != base {
		t.Fatal("key is not deterministic")
	}
	seen := map[string]string{base: "base"}
	check := func(what, k string) {
		t.Helper()
		if prev, dup := seen[k]; dup {
			t.Errorf("%s gives the same key as %s", what, prev)
		}
		seen[k] = what
	}
	check("script change", key(src+"echo\n"))
	check("args", key(src, "--prod"))
	check("custom key", key(src+"#FABRIK cache key=\"x\"\n"))
	env["MODE"] = "b"
	check("env value", key(src))
	delete(env, "MODE")
	check("env unset", key(src))
	env["MODE"] = "a"
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("two"), 0o644)
	check("input content", key(src))
	os.Chmod(filepath.Join(dir, "in.txt"), 0o755)
	check("input mode", key(src))
}

func TestHashModes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("aaaa"), 0o644)
	key := func(mode string) string {
		s, err := Parse("b.sh", filepath.Join(dir, "b.sh"), []byte("#!/bin/sh\n#FABRIK input \"f\" hash="+mode+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := ComputeKey(s, KeyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return k.Hex
	}
	size, mtime := key("size"), key("mtime")
	old := time.Unix(1_700_000_000, 0)
	os.WriteFile(p, []byte("bbbb"), 0o644)
	os.Chtimes(p, old, old)
	if key("size") != size {
		t.Error("hash=size changed with same-size content")
	}
	if key("mtime") == mtime {
		t.Error("hash=mtime kept its key after the mtime changed")
	}
	m2 := key("mtime")
	os.WriteFile(p, []byte("cccc"), 0o644)
	os.Chtimes(p, old, old)
	if key("mtime") != m2 {
		t.Error("hash=mtime changed with content but the same mtime")
	}
	os.WriteFile(p, []byte("ccccc"), 0o644)
	if key("size") == size {
		t.Error("hash=size kept its key after the size changed")
	}
}
