package configcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/config"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, cwd string, env []string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, &out, &errb, append([]string{"HOME=" + cwd}, env...), cwd)
	return result{code, out.String(), errb.String()}
}

func write(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidateBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, toml string
		want       string // the whole PATH:LINE: prefix plus part of the sentence
		line       int
	}{
		{"typo'd key", "[cache]\ndir = \"/x\"\nmax_szie = \"5GB\"\n", `unknown key "max_szie" in [cache]; did you mean "max_size"?`, 3},
		{"negative size", "[cache]\nmax_size = \"-5GB\"\n", `cache.max_size: "-5GB" is negative`, 2},
		{"unknown policy", "[cache]\neviction_policy = \"random\"\n", `cache.eviction_policy "random" is not one of lru, lfu, ttl`, 2},
		{"unsupported scheme", "[[upstream]]\nurl = \"http://c:80\"\n", `unsupported scheme "http"`, 2},
		{"s3 without region", "[[upstream]]\nurl = \"s3://b/p/\"\n", "S3 upstream s3://b/p/ has no region", 1},
		{"bad duration", "[cache]\n\ndefault_ttl = \"soon\"\n", `"soon" is not a duration`, 3},
		{"wrong type", "[runtime]\nmax_concurrent_requests = \"many\"\n", "must be a whole number", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := write(t, filepath.Join(dir, "bad.toml"), c.toml)
			r := run(t, dir, nil, "validate", path)
			if r.code != 2 {
				t.Errorf("exit %d, want 2", r.code)
			}
			prefix := path + ":" + strconv.Itoa(c.line) + ": "
			found := false
			for _, line := range strings.Split(r.stderr, "\n") {
				if strings.HasPrefix(line, prefix) && strings.Contains(line, c.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no line %q...%q in:\n%s", prefix, c.want, r.stderr)
			}
			if !strings.Contains(r.stderr, "[fabrik] ") || r.stdout != "" {
				t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
			}
		})
	}
	r := run(t, dir, nil, "validate", filepath.Join(dir, "missing.toml"))
	if r.code != 2 || !strings.Contains(r.stderr, filepath.Join(dir, "missing.toml")+": the config file does not exist") {
		t.Errorf("unreadable file: %d %q", r.code, r.stderr)
	}
}

func TestValidateDiscoversAndAcceptsGoodFile(t *testing.T) {
	dir := t.TempDir()
	path := write(t, filepath.Join(dir, "fabrik.toml"), "[cache]\nmax_size = \"1GB\"\n")
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	r := run(t, sub, nil, "validate")
	if r.code != 0 || r.stdout != "[fabrik] "+path+" is valid\n" {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestGenerateOutputValidates(t *testing.T) {
	dir := t.TempDir()
	for _, name := range config.TemplateNames {
		for _, args := range [][]string{{"generate", "--template", name}, {"generate", "--template=" + name}} {
			r := run(t, dir, nil, args...)
			if r.code != 0 || !strings.HasPrefix(r.stdout, "# ") {
				t.Fatalf("%v: exit %d, %q", args, r.code, r.stderr)
			}
			path := write(t, filepath.Join(dir, name+".toml"), r.stdout)
			for _, role := range []string{"edge", "regional"} {
				v := run(t, dir, nil, "validate", path, "--role", role)
				if v.code != 0 && !onlyMissingFiles(v.stderr) {
					t.Errorf("generated %s does not validate as %s:\n%s", name, role, v.stderr)
				}
			}
		}
	}
	for _, args := range [][]string{{"generate"}, {"generate", "--template", "laptop"}, {"generate", "--nope"}, {}, {"frobnicate"}} {
		if r := run(t, dir, nil, args...); r.code != 2 || !strings.Contains(r.stderr, "usage:") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestShowRedactsAndAnnotates(t *testing.T) {
	dir := t.TempDir()
	path := write(t, filepath.Join(dir, "fabrik.toml"), `[cache]
max_size = "2GB"

[[upstream]]
url = "s3://bucket/p/"
region = "eu-west-1"
access_key = "AKIAFILESECRET"

[auth]
token = "file-token-secret"

[p2p]
secret = "p2p-secret-0123456789"
`)
	env := []string{"AWS_SECRET_ACCESS_KEY=aws-env-secret", "FABRIK_CONFIG_CACHE_EVICTION_POLICY=lru"}
	r := run(t, dir, env, "show", "--config", path, "--config-observability-log-level", "debug")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, secret := range []string{"AKIAFILESECRET", "file-token-secret", "p2p-secret-0123456789", "aws-env-secret"} {
		if strings.Contains(r.stdout, secret) {
			t.Errorf("secret %q printed", secret)
		}
	}
	for _, want := range []string{
		`access_key = "***"`, `secret_key = "***"`, `token = "***"`, `secret = "***"`,
		"# env AWS_SECRET_ACCESS_KEY",
		`max_size = "2GB"`, "# file " + path + ":2",
		`eviction_policy = "lru"`, "# env FABRIK_CONFIG_CACHE_EVICTION_POLICY",
		`log_level = "debug"`, "# flag --config-observability-log-level",
		`dir = "` + filepath.Join(dir, ".cache", "fabrik") + `"`,
		"[[upstream]]", "[build_tools.gradle]",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
}

// What show prints must load back to the same configuration: it is a usable
// config file, not only a report.
func TestShowRoundTrips(t *testing.T) {
	dir := t.TempDir()
	env := []string{"FABRIK_CONFIG_UPSTREAM_0_URL=grpc://regional:7070", "FABRIK_CONFIG_BUILD_TOOLS_ENABLED=gradle,nx",
		"FABRIK_CONFIG_UPSTREAM_0_WRITE_THROUGH=false"}
	r := run(t, dir, env, "show", "--role", "regional")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	path := write(t, filepath.Join(dir, "shown.toml"), r.stdout)
	want, err := config.Load(config.LoadOptions{Role: config.RoleRegional, Env: append(env, "HOME="+dir), Cwd: dir, Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(config.LoadOptions{Role: config.RoleRegional, Path: path, Cwd: dir, Home: dir})
	if err != nil {
		t.Fatalf("show output does not load: %v\n%s", err, r.stdout)
	}
	// Compared by value as TOML spells it: an empty list and a nil one mean
	// the same to the node.
	gotLeaves, wantLeaves := config.Leaves(&got.Config), config.Leaves(&want.Config)
	if len(gotLeaves) != len(wantLeaves) {
		t.Fatalf("round trip has %d keys, want %d", len(gotLeaves), len(wantLeaves))
	}
	for i := range gotLeaves {
		g, w := gotLeaves[i], wantLeaves[i]
		if g.Key != w.Key || g.TOML() != w.TOML() {
			t.Errorf("round trip: %s = %s, want %s = %s", g.Key, g.TOML(), w.Key, w.TOML())
		}
	}
}

func TestShowRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	r := run(t, dir, []string{"FABRIK_CONFIG_CACHE_MAX_SIZE=-1GB"}, "show")
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "env FABRIK_CONFIG_CACHE_MAX_SIZE: ") {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := run(t, dir, nil, "show", "--verbose"); r.code != 2 {
		t.Errorf("unknown flag: exit %d", r.code)
	}
}

// onlyMissingFiles reports whether every problem validate printed is a key or
// token file that does not exist here (templates name the operator's
// /etc/fabrik/... files, which this machine does not have).
func onlyMissingFiles(stderr string) bool {
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.HasPrefix(line, "[fabrik]") {
			continue
		}
		if !strings.Contains(line, "cannot be read") {
			return false
		}
	}
	return true
}
