package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/tuist/fabrik-node/config"
)

// Configure turns a project's loaded config into its daemon's: every
// listener on loopback, on the port [daemon] names or else port 0, so that
// several projects' daemons never collide (ports.json says what was bound);
// and, when the file does not set cache.dir, a cache directory of the
// project's own under cacheHome ($XDG_CACHE_HOME/fabrik), since two daemons
// cannot open one store. The directory is keyed by the config's path, not
// its content, so editing fabrik.toml keeps the project's cache.
func Configure(l *config.Loaded, cacheHome string) config.Config {
	cfg := l.Config
	d := cfg.Daemon
	loop := func(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
	cfg.BuildTools.HTTPBind = loop(d.HTTPPort)
	cfg.BuildTools.GRPCBind = loop(d.GRPCPort)
	cfg.Observability.HealthBind = loop(d.HealthPort)
	cfg.Observability.APIBind = loop(d.APIPort)
	cfg.Observability.MetricsBind = ""
	// The sccache S3 API listens on [build_tools.sccache] bind (host:port).
	if slices.Contains(cfg.BuildTools.Enabled, "sccache") {
		cfg.BuildTools.Sccache.Bind = loop(d.S3Port)
	}
	if cfg.Fabrik.Enabled {
		cfg.Fabrik.Bind = loop(d.FabrikPort)
	}
	if src := l.Sources["cache.dir"]; (src == "" || src == "default") && cacheHome != "" {
		cfg.Cache.Dir = ProjectCacheDir(cacheHome, l.Path)
	}
	return cfg
}

// ProjectCacheDir is the default cache directory of a project's daemon.
func ProjectCacheDir(cacheHome, configPath string) string {
	sum := sha256.Sum256([]byte(configPath))
	return filepath.Join(cacheHome, "projects", hex.EncodeToString(sum[:])[:IDLength])
}
