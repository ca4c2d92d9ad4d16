package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// valueOf reads a key from a config the way show does.
func valueOf(t *testing.T, c *Config, key string) string {
	t.Helper()
	for _, l := range Leaves(c) {
		if l.Key == key {
			return l.TOML()
		}
	}
	return "<absent>"
}

func TestPrecedenceEveryCombination(t *testing.T) {
	type layer struct{ file, env, flag string }
	keys := []struct {
		key      string
		fileTOML func(v string) string
		values   layer
		want     layer // as TOML() spells them
		dflt     string
	}{
		{"cache.dir", func(v string) string { return "[cache]\ndir = \"" + v + "\"\n" },
			layer{"/f/dir", "/e/dir", "/c/dir"}, layer{`"/f/dir"`, `"/e/dir"`, `"/c/dir"`}, `"` + filepath.Join("HOME", ".cache", "fabrik") + `"`},
		{"cache.max_size", func(v string) string { return "[cache]\nmax_size = \"" + v + "\"\n" },
			layer{"1GB", "2GB", "3GB"}, layer{`"1GB"`, `"2GB"`, `"3GB"`}, `"5GB"`},
		{"observability.log_level", func(v string) string { return "[observability]\nlog_level = \"" + v + "\"\n" },
			layer{"debug", "warn", "error"}, layer{`"debug"`, `"warn"`, `"error"`}, `"info"`},
		{"upstream.0.url", func(v string) string { return "[[upstream]]\nurl = \"" + v + "\"\n" },
			layer{"grpc://file:7070", "grpc://env:7070", "grpc://flag:7070"},
			layer{`"grpc://file:7070"`, `"grpc://env:7070"`, `"grpc://flag:7070"`}, "<absent>"},
	}
	for _, k := range keys {
		for mask := 0; mask < 8; mask++ {
			inFile, inEnv, inFlag := mask&1 != 0, mask&2 != 0, mask&4 != 0
			name := k.key + "/" + map[bool]string{true: "file", false: "-"}[inFile] +
				map[bool]string{true: "+env", false: ""}[inEnv] + map[bool]string{true: "+flag", false: ""}[inFlag]
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				home := filepath.Join(dir, "HOME")
				opts := LoadOptions{Cwd: dir, Home: home, Env: []string{"HOME=" + home}}
				if inFile {
					opts.Path = writeFile(t, filepath.Join(dir, "fabrik.toml"), k.fileTOML(k.values.file))
				}
				if inEnv {
					opts.Env = append(opts.Env, EnvName(k.key)+"="+k.values.env)
				}
				if inFlag {
					opts.Args = []string{"--role", "edge", FlagName(k.key), k.values.flag}
				}
				l, err := Load(opts)
				if err != nil {
					t.Fatal(err)
				}
				want, src := strings.ReplaceAll(k.dflt, "HOME", home), "default"
				switch {
				case inFlag:
					want, src = k.want.flag, "flag "+FlagName(k.key)
				case inEnv:
					want, src = k.want.env, "env "+EnvName(k.key)
				case inFile:
					want, src = k.want.file, "file "+opts.Path+":2"
				}
				if got := valueOf(t, &l.Config, k.key); got != want {
					t.Errorf("%s = %s, want %s", k.key, got, want)
				}
				if want != "<absent>" && l.Sources[k.key] != src {
					t.Errorf("source of %s = %q, want %q", k.key, l.Sources[k.key], src)
				}
			})
		}
	}
}

func TestLogLevelRuntimeOverrides(t *testing.T) {
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"FABRIK_CONFIG_OBSERVABILITY_LOG_LEVEL=warn"}, nil, "warn"},
		{[]string{"FABRIK_CONFIG_OBSERVABILITY_LOG_LEVEL=warn", "FABRIK_LOG_LEVEL=debug"}, nil, "debug"},
		{[]string{"FABRIK_LOG_LEVEL=debug"}, []string{"--config-observability-log-level=error"}, "error"},
		{[]string{"FABRIK_LOG_LEVEL=debug"}, []string{"--config-observability-log-level=error", "--log-level", "warn"}, "warn"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		path := writeFile(t, filepath.Join(dir, "f.toml"), "[observability]\nlog_level = \"info\"\n")
		l, err := Load(LoadOptions{Path: path, Env: c.env, Args: c.args, Cwd: dir, Home: dir})
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Config.Observability.LogLevel; got != c.want {
			t.Errorf("env %v args %v: log_level %q, want %q", c.env, c.args, got, c.want)
		}
	}
}

func TestEnvArraysAndNestedTables(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "fabrik.toml"), `
[[upstream]]
url = "grpc://regional:7070"
timeout = "10s"
`)
	env := []string{
		"FABRIK_CONFIG_UPSTREAM_0_TIMEOUT=45s",
		"FABRIK_CONFIG_UPSTREAM_1_URL=s3://bucket/prefix/",
		"FABRIK_CONFIG_UPSTREAM_1_REGION=eu-west-1",
		"FABRIK_CONFIG_UPSTREAM_1_WRITE_THROUGH=false",
		"FABRIK_CONFIG_BUILD_TOOLS_GRADLE_PORT=5099",
		"FABRIK_CONFIG_BUILD_TOOLS_ENABLED=gradle, nx",
		"FABRIK_CONFIG_CACHE_FSYNC=false",
	}
	l, err := Load(LoadOptions{Path: path, Env: env, Cwd: dir, Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if len(c.Upstream) != 2 {
		t.Fatalf("want 2 upstreams, got %+v", c.Upstream)
	}
	if c.Upstream[0].URL != "grpc://regional:7070" || c.Upstream[0].Timeout.D().Seconds() != 45 {
		t.Errorf("upstream 0 = %+v: env timeout must override the file and keep its url", c.Upstream[0])
	}
	if c.Upstream[1].URL != "s3://bucket/prefix/" || c.Upstream[1].Region != "eu-west-1" || c.Upstream[1].IsWriteThrough() {
		t.Errorf("upstream 1 = %+v", c.Upstream[1])
	}
	if c.BuildTools.Gradle.Port != 5099 || strings.Join(c.BuildTools.Enabled, ",") != "gradle,nx" || c.Cache.Fsync {
		t.Errorf("build tools %+v, fsync %v", c.BuildTools, c.Cache.Fsync)
	}
	if l.Sources["upstream.1.url"] != "env FABRIK_CONFIG_UPSTREAM_1_URL" || l.Sources["upstream.1.timeout"] != "default" {
		t.Errorf("sources: %q %q", l.Sources["upstream.1.url"], l.Sources["upstream.1.timeout"])
	}

	// With no file at all, an env override creates upstream 0; the
	// spec's bare --config-upstream names its url.
	l, err = Load(LoadOptions{Env: []string{"FABRIK_CONFIG_UPSTREAM_0_URL=grpc://cache:7070"}, Cwd: dir, Home: dir,
		Args: []string{"--config-upstream", "grpcs://other:7070"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Config.Upstream) != 1 || l.Config.Upstream[0].URL != "grpcs://other:7070" {
		t.Errorf("upstreams %+v", l.Config.Upstream)
	}
}

// Every key must be reachable by its derived env and flag names: the proof
// that the names come from the structs and nothing is hand-listed.
func TestEveryKeyHasEnvAndFlag(t *testing.T) {
	for _, key := range allKeys() {
		env := strings.TrimPrefix(EnvName(key), "FABRIK_CONFIG_")
		if got, ok := resolveName(env); !ok || got != key {
			t.Errorf("%s resolves to %q, %v; want %s", EnvName(key), got, ok, key)
		}
		flag := flagToEnv(strings.TrimPrefix(FlagName(key), "--config-"))
		if got, ok := resolveName(flag); !ok || got != key {
			t.Errorf("%s resolves to %q, %v; want %s", FlagName(key), got, ok, key)
		}
	}
}

func TestDiscovery(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	project := filepath.Join(root, "projects", "app")
	nested := filepath.Join(project, "src", "sub")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	projectFile := writeFile(t, filepath.Join(project, "fabrik.toml"), "[cache]\nmax_size = \"1GB\"\n")
	homeFile := writeFile(t, filepath.Join(home, ".config", "fabrik", "config.toml"), "[cache]\nmax_size = \"2GB\"\n")
	xdgFile := writeFile(t, filepath.Join(root, "xdg", "fabrik", "config.toml"), "[cache]\nmax_size = \"3GB\"\n")
	explicit := writeFile(t, filepath.Join(root, "explicit.toml"), "[cache]\nmax_size = \"4GB\"\n")
	elsewhere := filepath.Join(root, "elsewhere")
	if err := os.MkdirAll(elsewhere, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, cwd, path string
		env             []string
		want            string
		size            ByteSize
	}{
		{"nested directory finds the project file", nested, "", nil, projectFile, 1e9},
		{"project file wins over XDG", project, "", []string{"XDG_CONFIG_HOME=" + filepath.Join(root, "xdg")}, projectFile, 1e9},
		{"XDG_CONFIG_HOME fallback", elsewhere, "", []string{"XDG_CONFIG_HOME=" + filepath.Join(root, "xdg")}, xdgFile, 3e9},
		{"~/.config fallback", elsewhere, "", nil, homeFile, 2e9},
		{"FABRIK_CONFIG_PATH beats discovery", nested, "", []string{"FABRIK_CONFIG_PATH=" + explicit}, explicit, 4e9},
		{"--config beats FABRIK_CONFIG_PATH", nested, explicit, []string{"FABRIK_CONFIG_PATH=" + homeFile}, explicit, 4e9},
		{"relative --config resolves against cwd", root, "explicit.toml", nil, explicit, 4e9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := Load(LoadOptions{Cwd: c.cwd, Path: c.path, Env: c.env, Home: home})
			if err != nil {
				t.Fatal(err)
			}
			if l.Path != c.want || l.Config.Cache.MaxSize != c.size {
				t.Errorf("loaded %q (max_size %v), want %q (%v)", l.Path, l.Config.Cache.MaxSize, c.want, c.size)
			}
		})
	}
	// Nothing anywhere: defaults, no path.
	l, err := Load(LoadOptions{Cwd: elsewhere, Home: filepath.Join(root, "nohome")})
	if err != nil || l.Path != "" || l.Config.Cache.MaxSize != 5e9 {
		t.Errorf("defaults: %v %q %v", err, l.Path, l.Config.Cache.MaxSize)
	}
}

func TestRelativePaths(t *testing.T) {
	root := t.TempDir()
	project := filepath.Join(root, "project")
	shell := filepath.Join(root, "shell")
	// The key file and directory must exist: validation checks them.
	absKey := writeFile(t, filepath.Join(root, "etc", "key.pem"), "key")
	if err := os.MkdirAll(filepath.Join(root, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, filepath.Join(project, "fabrik.toml"), `
[cache]
dir = ".fabrik/cache"
[auth]
token_file = ".fabrik.token"
public_keys_dir = "../keys"
public_key_file = "`+absKey+`"
[daemon]
state_dir = "~/daemons"
`)
	l, err := Load(LoadOptions{Path: path, Cwd: shell, Home: "/home/u",
		Env: []string{"FABRIK_CONFIG_DAEMON_SOCKET=run/fabrik.sock"}})
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	want := map[string]string{
		c.Cache.Dir:          filepath.Join(project, ".fabrik", "cache"),
		c.Auth.TokenFile:     filepath.Join(project, ".fabrik.token"),
		c.Auth.PublicKeysDir: filepath.Join(root, "keys"),
		c.Auth.PublicKeyFile: absKey,
		c.Daemon.StateDir:    "/home/u/daemons",
		c.Daemon.Socket:      filepath.Join(shell, "run", "fabrik.sock"), // overrides are the shell's
	}
	for got, w := range want {
		if got != w {
			t.Errorf("path %q, want %q", got, w)
		}
	}
}

func TestStandardFallbacks(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "f.toml"), `
[[upstream]]
url = "grpc://regional:7070"
[[upstream]]
url = "s3://bucket/p/"
[[upstream]]
url = "s3://other/p/"
region = "ap-south-1"
access_key = "FILEKEY"
`)
	env := []string{"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIA", "AWS_SECRET_ACCESS_KEY=SECRET", "FABRIK_TOKEN=tok"}
	l, err := Load(LoadOptions{Path: path, Env: env, Cwd: dir, Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	u := l.Config.Upstream
	if u[0].Region != "" || u[0].AccessKey != "" {
		t.Errorf("a grpc upstream takes no AWS fallbacks: %+v", u[0])
	}
	if u[1].Region != "us-east-1" || u[1].AccessKey != "AKIA" || u[1].SecretKey != "SECRET" {
		t.Errorf("s3 upstream without settings: %+v", u[1])
	}
	if u[2].Region != "ap-south-1" || u[2].AccessKey != "FILEKEY" || u[2].SecretKey != "SECRET" {
		t.Errorf("the file beats the fallbacks: %+v", u[2])
	}
	if l.Config.Auth.Token != "tok" || l.Sources["auth.token"] != "env FABRIK_TOKEN" {
		t.Errorf("token %q from %q", l.Config.Auth.Token, l.Sources["auth.token"])
	}
	l, err = Load(LoadOptions{Path: path, Env: append(env, "FABRIK_CONFIG_AUTH_TOKEN=explicit"), Cwd: dir, Home: dir})
	if err != nil || l.Config.Auth.Token != "explicit" {
		t.Errorf("FABRIK_CONFIG_AUTH_TOKEN must beat FABRIK_TOKEN: %v %q", err, l.Config.Auth.Token)
	}
}

func TestSplitArgs(t *testing.T) {
	args := []string{"--role", "edge", "--config-cache-dir", "/x", "--config-cache-fsync", "build",
		"--config=/c.toml", "--log-level", "debug", "--version", "--config-upstream-0-url=grpc://a:1", "--", "--config-cache-dir", "/y"}
	cfg, rest := SplitArgs(args)
	wantCfg := []string{"--config-cache-dir", "/x", "--config-cache-fsync", "--config=/c.toml", "--log-level", "debug", "--config-upstream-0-url=grpc://a:1"}
	wantRest := []string{"--role", "edge", "build", "--version", "--", "--config-cache-dir", "/y"}
	if strings.Join(cfg, " ") != strings.Join(wantCfg, " ") || strings.Join(rest, " ") != strings.Join(wantRest, " ") {
		t.Errorf("SplitArgs:\n cfg  %q\n rest %q", cfg, rest)
	}
}

func TestResolveToken(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "p", "fabrik.toml"), "[auth]\ntoken_file = \".fabrik.token\"\n")
	writeFile(t, filepath.Join(dir, "p", ".fabrik.token"), "tok-from-file\n")
	l, err := Load(LoadOptions{Path: path, Cwd: dir, Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := l.Config.Auth.ResolveToken(); err != nil || tok != "tok-from-file" {
		t.Errorf("token %q, %v", tok, err)
	}
}
