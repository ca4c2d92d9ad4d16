package node

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/config"
)

// A regional with no key source refuses to serve the Fabrik protocol or the
// API on a non-loopback address, and says how to fix it; the refusal comes
// before anything is bound. auth.required = false is the explicit way to run
// open (warned about), and loopback stays open for laptops.
func TestOpenNonLoopbackListenerRefused(t *testing.T) {
	c := config.Default(config.RoleRegional) // Fabrik and API on 0.0.0.0
	c.Cache.Dir = t.TempDir()
	c.Observability.HealthBind = "127.0.0.1:0"
	n, err := New(Options{Role: config.RoleRegional, Config: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start()
	if err == nil {
		n.Stop(t.Context())
		t.Fatal("an unconfigured regional started open on 0.0.0.0")
	}
	for _, want := range []string{"without authentication", "auth.public_key_file", "auth.required = false"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	n.Stop(t.Context())

	edge := startNode(t, config.RoleEdge, testConfig(t, config.RoleEdge, t.TempDir()))
	if err := edge.checkExposure("fabrik", "0.0.0.0:7070"); err == nil {
		t.Error("0.0.0.0 without auth accepted")
	}
	if err := edge.checkExposure("http", "127.0.0.1:5071"); err != nil {
		t.Errorf("loopback refused: %v", err)
	}
	if err := edge.checkExposure("health", "0.0.0.0:8888"); err != nil {
		t.Errorf("health refused: %v", err)
	}
	off := false
	edge.cfg.Auth.Required = &off
	if err := edge.checkExposure("fabrik", "0.0.0.0:7070"); err != nil {
		t.Errorf("auth.required = false still refused: %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "127.8.9.10:1": true, "[::1]:1": true, "localhost:1": true,
		"0.0.0.0:1": false, ":1": false, "[::]:1": false, "198.51.100.1:1": false, "cache.example:1": false, "junk": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
