package activate

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/daemon"
)

func state(ports map[string]int) *daemon.State {
	return &daemon.State{ID: "0123456789abcdef", Dir: "/s/0123456789abcdef", PID: 42, Ports: ports}
}

func names(vars []Var) []string {
	out := make([]string, len(vars))
	for i, v := range vars {
		out[i] = v.Name
	}
	return out
}

func value(vars []Var, name string) string {
	for _, v := range vars {
		if v.Name == name {
			return v.Value
		}
	}
	return ""
}

func withTools(tools ...string) config.Config {
	cfg := config.Default(config.RoleEdge)
	cfg.BuildTools.Enabled = tools
	return cfg
}

func TestExportsForTheDefaultTools(t *testing.T) {
	s := state(map[string]int{"http": 5000, "grpc": 6000, "health": 7000, "api": 8000})
	vars := Exports(withTools("gradle", "bazel", "nx", "turborepo"), s, "", "/bin/fabrik-node")
	want := map[string]string{
		"FABRIK_DAEMON":                      "/s/0123456789abcdef",
		"FABRIK_HTTP_URL":                    "http://127.0.0.1:5000",
		"FABRIK_GRPC_URL":                    "grpc://127.0.0.1:6000",
		"GRADLE_BUILD_CACHE_URL":             "http://127.0.0.1:5000/cache/",
		"NX_SELF_HOSTED_REMOTE_CACHE_SERVER": "http://127.0.0.1:5000",
		"TURBO_API":                          "http://127.0.0.1:5000",
		"TURBO_TOKEN":                        "fabrik",
		"TURBO_TEAM":                         "fabrik",
	}
	if len(vars) != len(want) {
		t.Fatalf("exports %v, want exactly %v", names(vars), want)
	}
	for k, w := range want {
		if got := value(vars, k); got != w {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
}

func TestExportsOnlyForEnabledToolsWithAListener(t *testing.T) {
	// Bazel enabled but no gRPC listener; nx disabled.
	vars := Exports(withTools("gradle", "bazel"), state(map[string]int{"http": 5000}), "", "")
	got := names(vars)
	if slices.Contains(got, "FABRIK_GRPC_URL") || slices.Contains(got, "NX_SELF_HOSTED_REMOTE_CACHE_SERVER") || slices.Contains(got, "TURBO_API") {
		t.Fatalf("exports %v: a tool without a listener or not enabled was exported", got)
	}
	// A tool on a port of its own is reached there.
	vars = Exports(withTools("gradle"), state(map[string]int{"http": 5000, "gradle": 5500}), "", "")
	if v := value(vars, "GRADLE_BUILD_CACHE_URL"); v != "http://127.0.0.1:5500/cache/" {
		t.Fatalf("GRADLE_BUILD_CACHE_URL = %q, want gradle's own listener", v)
	}
}

func TestExportsCarryTheToken(t *testing.T) {
	vars := Exports(withTools("nx", "turborepo", "gradle"), state(map[string]int{"http": 5000}), "tok123", "")
	for _, n := range []string{"NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN", "TURBO_TOKEN", "GRADLE_BUILD_CACHE_PASSWORD"} {
		if value(vars, n) != "tok123" {
			t.Errorf("%s = %q, want the config's token", n, value(vars, n))
		}
	}
}

func TestExportsForTheAdaptersOnTheirConventions(t *testing.T) {
	s := state(map[string]int{"http": 5000, "s3": 5073})
	vars := Exports(withTools("sccache", "ccache", "gocache"), s, "", "/opt/fabrik node/fabrik-node")
	want := map[string]string{
		"SCCACHE_WEBDAV_ENDPOINT": "http://127.0.0.1:5000/webdav/",
		"CCACHE_REMOTE_STORAGE":   "http://127.0.0.1:5000/ccache|layout=subdirs",
		"GOCACHEPROG":             "'/opt/fabrik node/fabrik-node' gocacheprog --url http://127.0.0.1:5000",
	}
	for k, w := range want {
		if got := value(vars, k); got != w {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
	// WebDAV needs no credentials; S3 would need AWS keys activation must
	// not set.
	if value(vars, "SCCACHE_BUCKET") != "" {
		t.Error("both the WebDAV and the S3 endpoint exported for sccache")
	}
	// Without an HTTP listener, sccache uses the S3 API.
	vars = Exports(withTools("sccache"), state(map[string]int{"s3": 5073}), "", "")
	wantS3 := map[string]string{
		"SCCACHE_BUCKET":     "sccache",
		"SCCACHE_ENDPOINT":   "http://127.0.0.1:5073",
		"SCCACHE_S3_USE_SSL": "false",
		"SCCACHE_REGION":     "us-east-1",
	}
	for k, w := range wantS3 {
		if got := value(vars, k); got != w {
			t.Errorf("S3: %s = %q, want %q", k, got, w)
		}
	}
	// With a token, ccache and sccache's WebDAV send it as Bearer.
	vars = Exports(withTools("sccache", "ccache"), state(map[string]int{"http": 5000}), "tok", "")
	if value(vars, "SCCACHE_WEBDAV_TOKEN") != "tok" || value(vars, "CCACHE_REMOTE_STORAGE") != "http://127.0.0.1:5000/ccache|layout=subdirs|bearer-token=tok" {
		t.Errorf("token not carried: %v", vars)
	}
}

func TestPlanKeepsTheUsersVariables(t *testing.T) {
	env := map[string]string{
		"TURBO_TEAM":      "mine",               // the user's
		"FABRIK_HTTP_URL": "http://127.0.0.1:1", // ours, from the last project
		"TURBO_API":       "http://127.0.0.1:1", // ours, not wanted any more
		ManagedVar:        "FABRIK_HTTP_URL TURBO_API",
	}
	p := NewPlan(env, []Var{{"FABRIK_HTTP_URL", "http://127.0.0.1:2"}, {"TURBO_TEAM", "fabrik"}})
	if len(p.Set) != 1 || p.Set[0] != (Var{"FABRIK_HTTP_URL", "http://127.0.0.1:2"}) {
		t.Fatalf("Set = %v: want only FABRIK_HTTP_URL (TURBO_TEAM is the user's)", p.Set)
	}
	if !slices.Equal(p.Unset, []string{"TURBO_API"}) || !slices.Equal(p.Managed, []string{"FABRIK_HTTP_URL"}) {
		t.Fatalf("Unset = %v, Managed = %v", p.Unset, p.Managed)
	}
	// Leaving every project unsets only what the hook set.
	p = NewPlan(env, nil)
	if len(p.Set) != 0 || !slices.Equal(p.Unset, []string{"FABRIK_HTTP_URL", "TURBO_API"}) {
		t.Fatalf("leaving: %+v", p)
	}
}

// evalIn runs code in a real shell and prints the named variables.
func evalIn(t *testing.T, shell, code string, show ...string) string {
	t.Helper()
	if _, err := exec.LookPath(shell); err != nil {
		t.Skipf("%s not installed", shell)
	}
	var script string
	for _, n := range show {
		// The same printf line is valid bash, zsh and fish.
		script += "printf '%s=[%s]\\n' " + n + " \"$" + n + "\"\n"
	}
	f := filepath.Join(t.TempDir(), "code")
	if err := os.WriteFile(f, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	src := ". " + f
	if shell == "fish" {
		src = "source " + f
	}
	out, err := exec.Command(shell, "-c", src+"\n"+script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s\ncode:\n%s", shell, err, out, code)
	}
	return string(out)
}

func TestRenderQuotesForEachShell(t *testing.T) {
	tricky := `it's "$HOME" \ and ; rm -rf`
	p := Plan{Set: []Var{{"FABRIK_X", tricky}}, Managed: []string{"FABRIK_X"}}
	for _, sh := range Shells {
		t.Run(sh, func(t *testing.T) {
			out := evalIn(t, sh, Render(sh, p, Cache{Config: "/p/fabrik.toml", Stamp: "/s/ports.json", PID: 7}),
				"FABRIK_X", ManagedVar, configVar, pidVar)
			for _, want := range []string{"FABRIK_X=[" + tricky + "]", ManagedVar + "=[FABRIK_X]", configVar + "=[/p/fabrik.toml]", pidVar + "=[7]"} {
				if !strings.Contains(out, want) {
					t.Fatalf("%s printed:\n%s\nwant %q", sh, out, want)
				}
			}
		})
	}
}

func TestHooksAreValidShell(t *testing.T) {
	for _, sh := range Shells {
		t.Run(sh, func(t *testing.T) {
			if _, err := exec.LookPath(sh); err != nil {
				t.Skipf("%s not installed", sh)
			}
			hook, err := Hook(sh, "/opt/it's/fabrik-node")
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(t.TempDir(), "hook")
			os.WriteFile(f, []byte(hook), 0o644)
			if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", sh, err, out)
			}
			if !strings.Contains(hook, "__fabrik_hook") {
				t.Fatal("hook defines no __fabrik_hook")
			}
		})
	}
	if _, err := Hook("tcsh", "/x"); err == nil {
		t.Fatal("an unknown shell was accepted")
	}
}

func TestDeactivateUnsetsAndTurnsTheHookOff(t *testing.T) {
	env := map[string]string{"FABRIK_HTTP_URL": "x", "TURBO_TEAM": "mine", ManagedVar: "FABRIK_HTTP_URL"}
	for _, sh := range Shells {
		t.Run(sh, func(t *testing.T) {
			code := RenderDeactivate(sh, env)
			if !strings.Contains(code, "FABRIK_HTTP_URL") || strings.Contains(code, "TURBO_TEAM") {
				t.Fatalf("deactivate code touches the wrong variables:\n%s", code)
			}
			out := evalIn(t, sh, code, offVar)
			if !strings.Contains(out, offVar+"=[1]") {
				t.Fatalf("hook not turned off:\n%s", out)
			}
		})
	}
}

func TestInstallGradleInitIsIdempotent(t *testing.T) {
	home := filepath.Join(t.TempDir(), "gradle")
	wrote, err := InstallGradleInit(home)
	if err != nil || !wrote {
		t.Fatalf("first install: wrote %v, %v", wrote, err)
	}
	path := filepath.Join(home, "init.d", GradleInitName)
	body, err := os.ReadFile(path)
	if err != nil || string(body) != GradleInitScript {
		t.Fatalf("installed script: %v", err)
	}
	if wrote, err = InstallGradleInit(home); err != nil || wrote {
		t.Fatalf("second install rewrote the script: %v, %v", wrote, err)
	}
	// A script changed by hand (or by an older version) is replaced.
	os.WriteFile(path, []byte("// old\n"), 0o644)
	if wrote, err = InstallGradleInit(home); err != nil || !wrote {
		t.Fatalf("outdated script not replaced: %v, %v", wrote, err)
	}
	if got := GradleUserHome(func(string) string { return "" }, "/home/u"); got != "/home/u/.gradle" {
		t.Fatalf("GradleUserHome = %q", got)
	}
	if got := GradleUserHome(func(k string) string { return map[string]string{"GRADLE_USER_HOME": "/g"}[k] }, "/home/u"); got != "/g" {
		t.Fatalf("GradleUserHome with GRADLE_USER_HOME = %q", got)
	}
}
