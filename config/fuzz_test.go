package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds a TOML file and one FABRIK_CONFIG_* variable through the
// whole loader: it never panics, it fails only with a *ProblemsError, and a
// config it accepts passes Validate again (what was loaded is what was
// validated).
func FuzzLoad(f *testing.F) {
	f.Add("[cache]\nmax_size = \"1GB\"\n", "FABRIK_CONFIG_CACHE_DIR", "/tmp/x")
	f.Add("[[upstream]]\nurl = \"grpc://h:7070\"\n", "FABRIK_CONFIG_UPSTREAM_0_TIMEOUT", "5s")
	f.Add("[build_tools]\nenabled = [\"gradle\", \"nx\"]\n", "FABRIK_CONFIG_BUILD_TOOLS_ENABLED", "gradle,bazel")
	f.Add("[cache\n", "FABRIK_CONFIG_NOPE", "1")
	f.Add("cache = 3\n[cache.dir]\n", "FABRIK_CONFIG_UPSTREAM_99999999999999_URL", "s3://b/p")
	f.Add("[auth]\nrequired = \"yes\"\n", "FABRIK_CONFIG_", "")
	f.Add("", "FABRIK_CONFIG_UPSTREAM", "grpc://x:1")
	f.Fuzz(func(t *testing.T, file, envName, envValue string) {
		if len(file) > 16<<10 || strings.ContainsRune(envName, '=') {
			return
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "fabrik.toml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Load(LoadOptions{Role: RoleEdge, Path: path, Env: []string{envName + "=" + envValue}, Cwd: dir, Home: dir})
		if err != nil {
			var pe *ProblemsError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("Load failed with %T %v, want a *ProblemsError", err, err)
			}
			return
		}
		if ps := Validate(&l.Config); len(ps) > 0 {
			t.Fatalf("Load accepted a config Validate refuses: %v", ps)
		}
	})
}

// FuzzEnvName: an override name that resolves names a key whose own
// environment name resolves to the same key (round trip).
func FuzzEnvName(f *testing.F) {
	for _, s := range []string{"CACHE_DIR", "UPSTREAM_0_URL", "UPSTREAM", "BUILD_TOOLS_GRADLE_PORT", "BUILD_TOOLS_SCCACHE_BIND", "UPSTREAM_-1_URL", "UPSTREAM_01_URL", "", "_", "CACHE__DIR"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		key, ok := resolveName(name)
		if !ok {
			return
		}
		again, ok := resolveName(strings.TrimPrefix(EnvName(key), "FABRIK_CONFIG_"))
		if !ok || again != key {
			t.Fatalf("%q -> %q, whose name %s -> %q, %v", name, key, EnvName(key), again, ok)
		}
	})
}
