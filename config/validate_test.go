package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFileProblems(t *testing.T) {
	cases := []struct {
		name string
		toml string
		env  []string
		line int
		want string // substring of the message
	}{
		{"typo'd key with suggestion", "[cache]\nmax_szie = \"5GB\"\n", nil, 2,
			`unknown key "max_szie" in [cache]; did you mean "max_size"?`},
		{"unknown section", "[cache]\ndir = \"/x\"\n\n[obsrvability]\nlog_level = \"info\"\n", nil, 4,
			"unknown section [obsrvability]; did you mean [observability]?"},
		{"renamed section", "[build_systems.bazel]\nport = 0\n", nil, 1,
			"unknown section [build_systems]; did you mean [build_tools]?"},
		{"unknown key in upstream", "[[upstream]]\nurl = \"grpc://a:1\"\n\n[[upstream]]\nurl = \"grpc://b:1\"\ntimout = \"5s\"\n", nil, 6,
			`unknown key "timout" in [[upstream]] #2; did you mean "timeout"?`},
		{"wrong type", "[cache]\nfsync = \"yes\"\n", nil, 2, `cache.fsync must be true or false, not the string "yes"`},
		{"wrong type for a list", "[build_tools]\nenabled = \"gradle\"\n", nil, 2, "build_tools.enabled must be a list of strings"},
		{"wrong type for a table", "cache = 5\n", nil, 1, "cache must be a table"},
		{"bad size", "[cache]\nmax_size = \"5 gigs\"\n", nil, 2, `cache.max_size: "5 gigs" is not a size`},
		{"negative size", "[cache]\n\nmax_size = \"-1GB\"\n", nil, 3, "is negative: a size must be zero or more"},
		{"negative size as a number", "[cache]\nmax_artifact_size = -10\n", nil, 2, "-10 is negative"},
		{"bad duration", "[cache]\ndefault_ttl = \"a week\"\n", nil, 2, `cache.default_ttl: "a week" is not a duration`},
		{"duration as a number", "[[upstream]]\nurl = \"grpc://a:1\"\ntimeout = 30\n", nil, 3,
			`upstream.0.timeout must be a duration such as "30s" or "7d", not the number 30`},
		{"unknown eviction policy", "[cache]\neviction_policy = \"fifo\"\n", nil, 2,
			`cache.eviction_policy "fifo" is not one of lru, lfu, ttl`},
		{"unsupported scheme", "[[upstream]]\nurl = \"https://cache.example.com\"\n", nil, 2,
			`has the unsupported scheme "https"`},
		{"s3 without region", "[cache]\ndir = \"/x\"\n[[upstream]]\nurl = \"s3://bucket/p/\"\n", nil, 3,
			"S3 upstream s3://bucket/p/ has no region"},
		{"upstream without url", "[[upstream]]\ntimeout = \"5s\"\n", nil, 1, "upstream.0 has no url"},
		{"grpc without port", "[[upstream]]\nurl = \"grpc://regional\"\n", nil, 2, "needs a port"},
		{"bad log level", "[observability]\nlog_level = \"verbose\"\n", nil, 2, `observability.log_level "verbose" is not one of`},
		{"port out of range", "[build_tools.gradle]\nport = 70000\n", nil, 2, "build_tools.gradle.port 70000 is not a port"},
		{"unknown build tool", "[build_tools]\nenabled = [\"gradel\"]\n", nil, 2, `"gradel" is not a build tool`},
		{"not TOML", "[cache]\ndir = \"/x\"\nmax_size = \n", nil, 3, "this is not valid TOML"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, filepath.Join(dir, "fabrik.toml"), c.toml)
			_, err := Load(LoadOptions{Path: path, Env: c.env, Cwd: dir, Home: dir})
			var pe *ProblemsError
			if !errors.As(err, &pe) {
				t.Fatalf("want problems, got %v", err)
			}
			found := false
			for _, p := range pe.Problems {
				if strings.Contains(p.Message, c.want) {
					found = true
					if p.File != path || p.Line != c.line {
						t.Errorf("problem at %s:%d, want %s:%d (%s)", p.File, p.Line, path, c.line, p.Message)
					}
				}
			}
			if !found {
				t.Errorf("no problem says %q; got:\n%v", c.want, err)
			}
		})
	}
}

func TestS3RegionFromFallbackIsValid(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "f.toml"), "[[upstream]]\nurl = \"s3://bucket/p/\"\n")
	if _, err := Load(LoadOptions{Path: path, Env: []string{"AWS_REGION=eu-west-1"}, Cwd: dir, Home: dir}); err != nil {
		t.Fatalf("AWS_REGION must satisfy the region check: %v", err)
	}
}

func TestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	for name, path := range map[string]string{
		"missing":   filepath.Join(dir, "nope.toml"),
		"directory": dir,
	} {
		_, err := Load(LoadOptions{Path: path, Cwd: dir, Home: dir})
		var pe *ProblemsError
		if !errors.As(err, &pe) || len(pe.Problems) != 1 || pe.Problems[0].File != path {
			t.Fatalf("%s: want one problem naming %s, got %v", name, path, err)
		}
		if !strings.Contains(pe.Problems[0].Message, "config file") {
			t.Errorf("%s: %q", name, pe.Problems[0].Message)
		}
	}
}

func TestOverrideProblems(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(LoadOptions{Cwd: dir, Home: dir,
		Env:  []string{"FABRIK_CONFIG_CACHE_MAX_SIZ=1GB", "FABRIK_CONFIG_CACHE_EVICTION_POLICY=fifo"},
		Args: []string{"--config-cache-max-size", "-3GB"}})
	var pe *ProblemsError
	if !errors.As(err, &pe) {
		t.Fatalf("want problems, got %v", err)
	}
	got := err.Error()
	for _, want := range []string{
		"env FABRIK_CONFIG_CACHE_MAX_SIZ: FABRIK_CONFIG_CACHE_MAX_SIZ matches no config key (did you mean FABRIK_CONFIG_CACHE_MAX_SIZE?)",
		`env FABRIK_CONFIG_CACHE_EVICTION_POLICY: cache.eviction_policy "fifo" is not one of lru, lfu, ttl`,
		`flag --config-cache-max-size: cache.max_size: "-3GB" is negative`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestReloadable(t *testing.T) {
	old := Default(RoleEdge)
	next := Default(RoleEdge)
	next.Observability.LogLevel = "debug"
	next.Cache.MaxSize = 9e9
	next.Cache.EvictionPolicy = "lru"
	next.Auth.JWKSURL = "https://keys.example.com/jwks.json"
	next.BuildTools.HTTPBind = "127.0.0.1:6000"
	next.Upstream = []UpstreamConfig{{URL: "grpc://r:7070"}}

	changed, refused := Reloadable(&old, &next)
	for _, k := range []string{"observability.log_level", "cache.max_size", "cache.eviction_policy", "auth.jwks_url", "build_tools.http_bind", "upstream.0.url"} {
		if !slices.Contains(changed, k) {
			t.Errorf("%s not in changed %v", k, changed)
		}
	}
	if slices.Contains(changed, "cache.dir") {
		t.Errorf("unchanged key reported: %v", changed)
	}
	for _, k := range []string{"build_tools.http_bind", "upstream.0.url"} {
		if !slices.Contains(refused, k) {
			t.Errorf("%s must need a restart: refused %v", k, refused)
		}
	}
	for _, k := range LiveKeys {
		if slices.Contains(refused, k) {
			t.Errorf("%s is live but refused", k)
		}
	}

	live := Live(&old, &next)
	if live.Observability.LogLevel != "debug" || live.Cache.MaxSize != 9e9 || live.Cache.EvictionPolicy != "lru" ||
		live.Auth.JWKSURL != next.Auth.JWKSURL {
		t.Errorf("live keys not applied: %+v", live)
	}
	if live.BuildTools.HTTPBind != old.BuildTools.HTTPBind || len(live.Upstream) != 0 {
		t.Errorf("restart-only keys applied: %+v", live)
	}
	if c, r := Reloadable(&old, &old); len(c)+len(r) != 0 {
		t.Errorf("no change must report nothing: %v %v", c, r)
	}
}

func TestReloadReadsTheFileAgain(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "f.toml"), "[cache]\nmax_size = \"1GB\"\n[fabrik]\nbind = \"127.0.0.1:7000\"\n")
	opts := LoadOptions{Path: path, Cwd: dir, Home: dir}
	l, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "[cache]\nmax_size = \"2GB\"\n[fabrik]\nbind = \"127.0.0.1:7001\"\n")
	next, changed, refused, err := Reload(opts, &l.Config)
	if err != nil {
		t.Fatal(err)
	}
	if next.Cache.MaxSize != 2e9 || next.Fabrik.Bind != "127.0.0.1:7000" ||
		!slices.Equal(changed, []string{"cache.max_size", "fabrik.bind"}) || !slices.Equal(refused, []string{"fabrik.bind"}) {
		t.Errorf("next %v %v, changed %v, refused %v", next.Cache.MaxSize, next.Fabrik.Bind, changed, refused)
	}
	writeFile(t, path, "[cache]\nmax_size = \"-2GB\"\n")
	kept, _, _, err := Reload(opts, &l.Config)
	if err == nil || kept.Cache.MaxSize != 1e9 {
		t.Errorf("a bad file must keep the running config: %v %v", err, kept.Cache.MaxSize)
	}
}

func TestTemplatesAreValidAndMatchConfigs(t *testing.T) {
	for _, name := range TemplateNames {
		text, err := Template(name)
		if err != nil {
			t.Fatal(err)
		}
		onDisk, err := os.ReadFile(filepath.Join("..", "configs", name+".toml"))
		if err != nil || !bytes.Equal(text, onDisk) {
			t.Errorf("configs/%s.toml differs from config/templates/%s.toml (%v): run `go generate ./config`", name, name, err)
		}
		dir := t.TempDir()
		// The templates name the operator's key file under /etc/fabrik; give
		// them one here, since validation requires it to exist.
		writeFile(t, filepath.Join(dir, "jwt-public-key.pem"), "key")
		path := writeFile(t, filepath.Join(dir, "fabrik.toml"), strings.ReplaceAll(string(text), "/etc/fabrik/", dir+"/"))
		for _, role := range []Role{RoleEdge, RoleRegional} {
			if _, err := Load(LoadOptions{Role: role, Path: path, Cwd: dir, Home: dir}); err != nil {
				t.Errorf("template %s (role %s): %v", name, role, err)
			}
		}
	}
	if _, err := Template("laptop"); err == nil {
		t.Error("unknown template accepted")
	}
}

// Key and token files that do not exist are reported by validation, with
// their key, instead of making the node refuse to start later.
func TestMissingAuthFilesReported(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "fabrik.toml"), `[auth]
public_key_file = "missing.pem"
public_keys_dir = "fabrik.toml"
`)
	_, err := Load(LoadOptions{Role: RoleEdge, Path: path, Cwd: dir, Home: dir})
	if err == nil {
		t.Fatal("missing key files validated")
	}
	for _, want := range []string{"auth.public_key_file", "missing.pem", "auth.public_keys_dir", "not a directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not mention %q", err, want)
		}
	}
}

func TestLineIndex(t *testing.T) {
	text := `# comment
[cache]
dir = "/x"   # trailing = comment
notes = """
fake = 1
"""
list = [
  "a", # x = 2
]
[[upstream]]
url = "a"
[[upstream]]
"url" = "b"
[build_tools.gradle]
port = 1
inline = { a = 1, b = 2 }
after = 3
`
	idx := indexLines(text)
	want := map[string]int{
		"cache": 2, "cache.dir": 3, "cache.notes": 4, "cache.list": 7,
		"upstream.0": 10, "upstream.0.url": 11, "upstream.1.url": 13,
		"build_tools": 14, "build_tools.gradle.port": 15, "build_tools.gradle.inline.b": 16, "build_tools.gradle.after": 17,
	}
	for k, w := range want {
		if got := idx.line(k); got != w {
			t.Errorf("line(%s) = %d, want %d", k, got, w)
		}
	}
	if idx.line("cache.fake") != 2 {
		t.Errorf("a key inside a multi-line string must not be indexed")
	}
}
