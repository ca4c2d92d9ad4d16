package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// adminConfig returns the running node's effective config as the admin API
// reports it (a flat map of dotted keys).
func adminConfig(t *testing.T, n *harness.Node) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(apiGet(t, n, "", "/api/v1/admin/config", 200), &doc); err != nil {
		t.Fatal(err)
	}
	if cfg, ok := doc["config"].(map[string]any); ok {
		return cfg
	}
	return doc
}

// SIGHUP re-reads the config file: live keys change without a restart, a
// broken file keeps the running config, and the node keeps serving.
func TestSIGHUPReloadsLiveKeys(t *testing.T) {
	n := harness.StartNode(t, []string{"--config-observability-admin-api-enabled", "true"}, nil)
	if got := adminConfig(t, n)["cache.eviction_policy"]; got != "lfu" {
		t.Fatalf("cache.eviction_policy = %v before reload, want the default lfu", got)
	}
	orig, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(orig), "[cache]\n", "[cache]\neviction_policy = \"lru\"\n", 1)
	if err := os.WriteFile(n.ConfigPath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Signal(syscall.SIGHUP)
	waitUntil(t, "eviction policy reloaded", func() bool { return adminConfig(t, n)["cache.eviction_policy"] == "lru" })

	broken := strings.Replace(edited, "[cache]\n", "[cache]\nmax_sise = \"1GB\"\n", 1)
	if err := os.WriteFile(n.ConfigPath, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Signal(syscall.SIGHUP)
	waitUntil(t, "reload failure logged", func() bool { return strings.Contains(n.Logs(), "config reload failed") })
	if got := adminConfig(t, n)["cache.eviction_policy"]; got != "lru" {
		t.Fatalf("after a broken reload cache.eviction_policy = %v, want the running lru", got)
	}
	apiGet(t, n, "", "/metrics", 200)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !waitFor(10*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// The one-shot commands of the binary: --version, health, config validate.
func TestCLICommands(t *testing.T) {
	bin := harness.BuildBinary(t)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "fabrik-node ") {
		t.Fatalf("--version: %v %s", err, out)
	}

	n := harness.StartNode(t, nil, nil)
	out, err = exec.Command(bin, "health", "--url", n.HealthURL()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": healthy") || !strings.Contains(string(out), "objects") {
		t.Fatalf("health: %v %s", err, out)
	}
	n.Stop()
	if out, err = exec.Command(bin, "health", "--url", n.HealthURL()).CombinedOutput(); err == nil {
		t.Fatalf("health of a stopped node succeeded: %s", out)
	}

	bad := filepath.Join(t.TempDir(), "fabrik.toml")
	os.WriteFile(bad, []byte("[cache]\nmax_size = \"-5GB\"\n"), 0o600)
	cmd := exec.Command(bin, "config", "validate", bad)
	out, err = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), bad+":2:") {
		t.Fatalf("config validate of a bad file: exit %d, %s (err %v); want exit 2 with file:line", cmd.ProcessState.ExitCode(), out, err)
	}
	cmd = exec.Command(bin, "--config", bad)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("starting with a bad config: exit %d, want 2 (and no half-started node): %s", cmd.ProcessState.ExitCode(), out)
	}
}
