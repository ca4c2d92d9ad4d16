package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tuist/fabrik-node/config"
)

func loadFile(t *testing.T, content string) *config.Loaded {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "fabrik.toml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := config.Load(config.LoadOptions{Role: config.RoleEdge, Path: path, Cwd: dir, Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestConfigureBindsLoopbackPortZeroUnlessNamed(t *testing.T) {
	l := loadFile(t, "[build_tools]\nenabled = [\"gradle\", \"bazel\", \"sccache\"]\nhttp_bind = \"0.0.0.0:5071\"\n[daemon]\ngrpc_port = 19092\ns3_port = 15073\n")
	cfg := Configure(l, "/cache/fabrik")
	want := map[string]string{
		"http":    "127.0.0.1:0",
		"grpc":    "127.0.0.1:19092",
		"health":  "127.0.0.1:0",
		"api":     "127.0.0.1:0",
		"sccache": "127.0.0.1:15073",
	}
	got := map[string]string{
		"http":    cfg.BuildTools.HTTPBind,
		"grpc":    cfg.BuildTools.GRPCBind,
		"health":  cfg.Observability.HealthBind,
		"api":     cfg.Observability.APIBind,
		"sccache": cfg.BuildTools.Sccache.Bind,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s bind = %q, want %q", k, got[k], w)
		}
	}
	if cfg.Observability.MetricsBind != "" {
		t.Errorf("metrics_bind = %q, want none (the API listener serves /metrics)", cfg.Observability.MetricsBind)
	}
}

func TestConfigureGivesEachProjectItsOwnCacheDir(t *testing.T) {
	a := Configure(loadFile(t, "[cache]\nmax_size = \"1GB\"\n"), "/c/fabrik")
	b := Configure(loadFile(t, "[cache]\nmax_size = \"1GB\"\n"), "/c/fabrik")
	if a.Cache.Dir == b.Cache.Dir || filepath.Dir(a.Cache.Dir) != "/c/fabrik/projects" {
		t.Fatalf("cache dirs %q and %q: want one per project under /c/fabrik/projects", a.Cache.Dir, b.Cache.Dir)
	}
	l := loadFile(t, "[cache]\ndir = \"/explicit/cache\"\n")
	if got := Configure(l, "/c/fabrik").Cache.Dir; got != "/explicit/cache" {
		t.Fatalf("an explicit cache.dir became %q", got)
	}
	// The directory follows the file, not its content: an edit keeps it.
	dir := filepath.Dir(l.Path)
	edited := loadFile(t, "[cache]\nmax_size = \"2GB\"\n")
	edited.Path = filepath.Join(dir, "fabrik.toml")
	before := Configure(&config.Loaded{Config: l.Config, Sources: map[string]string{"cache.dir": "default"}, Path: edited.Path}, "/c")
	after := Configure(edited, "/c")
	if before.Cache.Dir != after.Cache.Dir {
		t.Fatalf("editing the file moved its cache: %q -> %q", before.Cache.Dir, after.Cache.Dir)
	}
}
