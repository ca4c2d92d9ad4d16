package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
)

// Choices of the enumerated keys, listed once for validation and messages.
var (
	EvictionPolicies = []string{"lru", "lfu", "ttl"}
	LogLevels        = []string{"debug", "info", "warn", "error"}
	LogFormats       = []string{"json", "text", "auto"}
	BuildTools       = []string{"gradle", "bazel", "nx", "turborepo", "sccache", "buildkit", "ccache", "gocache"}
	ConsentModes     = []string{"notify-once", "notify-always", "auto-approve", "disabled", "always-ask", "always-allow"}
	UpstreamSchemes  = []string{"grpc", "grpcs", "s3"}
)

// Validate checks a merged configuration for values that would make the node
// misbehave or fail later. Problems carry the key; Load adds the file and
// line, or the override, that set it.
func Validate(c *Config) []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	oneOf := func(key, value string, choices []string) {
		if slices.Contains(choices, value) {
			return
		}
		msg := fmt.Sprintf("%s %q is not one of %s", key, value, strings.Join(choices, ", "))
		if s := suggest(value, choices); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		ps = append(ps, Problem{Key: key, Message: msg})
	}
	bind := func(key, addr string) {
		if addr == "" {
			return
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || !validPort(port) {
			add(key, "%s %q is not a listen address of the form host:port (e.g. 127.0.0.1:8888)", key, addr)
		}
	}
	const maxInline = 512 << 10 // store.MaxInline
	nonNegative := func(key string, n int64, what string) {
		if n < 0 {
			add(key, "%s is negative: %s must be zero or more", key, what)
		}
	}

	if c.Cache.Dir == "" {
		add("cache.dir", "cache.dir is empty: the node needs a directory for its store")
	}
	nonNegative("cache.max_size", int64(c.Cache.MaxSize), "a size")
	nonNegative("cache.max_artifact_size", int64(c.Cache.MaxArtifactSize), "a size")
	nonNegative("cache.hot_size", int64(c.Cache.HotSize), "a size")
	nonNegative("cache.inline_max", int64(c.Cache.InlineMax), "a size")
	if c.Cache.InlineMax > maxInline {
		add("cache.inline_max", "cache.inline_max is more than 512KiB, the largest artifact stored inline")
	}
	nonNegative("cache.default_ttl", int64(c.Cache.DefaultTTL), "a duration")
	oneOf("cache.eviction_policy", c.Cache.EvictionPolicy, EvictionPolicies)

	for i, u := range c.Upstream {
		validateUpstream(fmt.Sprintf("upstream.%d", i), u, add)
	}

	if c.Auth.JWKSURL != "" {
		if u, err := url.Parse(c.Auth.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("auth.jwks_url", "auth.jwks_url %q is not an http(s) URL", c.Auth.JWKSURL)
		}
	}
	validateAuthFiles(c, add)
	nonNegative("auth.key_refresh_interval", int64(c.Auth.KeyRefreshInterval), "a duration")
	nonNegative("auth.leeway", int64(c.Auth.Leeway), "a duration")

	for i, tool := range c.BuildTools.Enabled {
		const key = "build_tools.enabled"
		if !slices.Contains(BuildTools, tool) {
			msg := fmt.Sprintf("%s item %d: %q is not a build tool (known: %s)", key, i+1, tool, strings.Join(BuildTools, ", "))
			if s := suggest(tool, BuildTools); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			ps = append(ps, Problem{Key: key, Message: msg})
		}
	}
	bind("build_tools.http_bind", c.BuildTools.HTTPBind)
	bind("build_tools.grpc_bind", c.BuildTools.GRPCBind)
	for i, tc := range []ToolConfig{c.BuildTools.Gradle, c.BuildTools.Bazel, c.BuildTools.Nx,
		c.BuildTools.Turborepo, ToolConfig{Port: c.BuildTools.Sccache.Port}, c.BuildTools.Buildkit, c.BuildTools.Ccache, c.BuildTools.Gocache} {
		portRange(fmt.Sprintf("build_tools.%s.port", BuildTools[i]), tc.Port, add)
	}

	bind("build_tools.sccache.bind", c.BuildTools.Sccache.Bind)
	if sc := c.BuildTools.Sccache; (sc.AccessKeyID == "") != (sc.SecretAccessKey == "") {
		add("build_tools.sccache.access_key_id", "build_tools.sccache.access_key_id and secret_access_key are set together or not at all")
	}
	nonNegative("build_tools.sccache.multipart_expiry", int64(c.BuildTools.Sccache.MultipartExpiry), "a duration")

	bind("fabrik.bind", c.Fabrik.Bind)

	oneOf("observability.log_level", c.Observability.LogLevel, LogLevels)
	oneOf("observability.log_format", c.Observability.LogFormat, LogFormats)
	bind("observability.health_bind", c.Observability.HealthBind)
	bind("observability.api_bind", c.Observability.APIBind)
	bind("observability.metrics_bind", c.Observability.MetricsBind)

	nonNegative("runtime.graceful_shutdown_timeout", int64(c.Runtime.GracefulShutdownTimeout), "a duration")
	nonNegative("runtime.drain_delay", int64(c.Runtime.DrainDelay), "a duration")
	nonNegative("runtime.max_concurrent_requests", int64(c.Runtime.MaxConcurrentRequests), "a limit")
	nonNegative("runtime.worker_threads", int64(c.Runtime.WorkerThreads), "a count")
	nonNegative("runtime.max_connections", int64(c.Runtime.MaxConnections), "a limit")
	nonNegative("runtime.idle_timeout", int64(c.Runtime.IdleTimeout), "a duration")
	nonNegative("runtime.read_header_timeout", int64(c.Runtime.ReadHeaderTimeout), "a duration")
	nonNegative("recipes.timeout", int64(c.Recipes.Timeout), "a duration")
	nonNegative("recipes.max_allocs", int64(c.Recipes.MaxAllocs), "a limit")

	bind("p2p.bind", c.P2P.Bind)
	portRange("p2p.bind_port", c.P2P.BindPort, add)
	oneOf("p2p.consent_mode", c.P2P.ConsentMode, ConsentModes)
	if c.P2P.Enabled && len(c.P2P.Secret) < 16 {
		add("p2p.secret", "p2p.secret must be at least 16 characters when p2p is enabled: peers authenticate with it")
	}
	nonNegative("p2p.max_peers", int64(c.P2P.MaxPeers), "a count")

	portRange("daemon.http_port", c.Daemon.HTTPPort, add)
	portRange("daemon.grpc_port", c.Daemon.GRPCPort, add)
	portRange("daemon.health_port", c.Daemon.HealthPort, add)
	portRange("daemon.api_port", c.Daemon.APIPort, add)
	portRange("daemon.s3_port", c.Daemon.S3Port, add)
	portRange("daemon.fabrik_port", c.Daemon.FabrikPort, add)

	if n := c.Events.NATSURL; n != "" && n != "embedded" && !strings.HasPrefix(n, "nats://") {
		add("events.nats_url", "events.nats_url %q must be empty, \"embedded\" or a nats:// URL", n)
	}
	return ps
}

func validateUpstream(key string, u UpstreamConfig, add func(key, format string, args ...any)) {
	if u.URL == "" {
		add(key+".url", "%s has no url: every [[upstream]] needs one (grpc://host:port, grpcs://host:port or s3://bucket/prefix/)", key)
		return
	}
	parsed, err := url.Parse(u.URL)
	switch {
	case err != nil:
		add(key+".url", "%s.url %q is not a URL: %v", key, u.URL, err)
		return
	case !slices.Contains(UpstreamSchemes, parsed.Scheme):
		add(key+".url", "%s.url %q has the unsupported scheme %q: use grpc://host:port, grpcs://host:port (Fabrik regional node) or s3://bucket/prefix/",
			key, u.URL, parsed.Scheme)
		return
	case parsed.Host == "":
		add(key+".url", "%s.url %q names no host or bucket", key, u.URL)
		return
	}
	if parsed.Scheme == "s3" {
		if u.Region == "" {
			add(key+".region", "S3 upstream %s has no region: set region in the file, %s or AWS_REGION", u.URL, EnvName(key+".region"))
		}
	} else if parsed.Port() == "" || !validPort(parsed.Port()) {
		add(key+".url", "%s.url %q needs a port (e.g. %s://%s:7070)", key, u.URL, parsed.Scheme, parsed.Hostname())
	}
	if u.Endpoint != "" {
		if e, err := url.Parse(u.Endpoint); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			add(key+".endpoint", "%s.endpoint %q is not an http(s) URL", key, u.Endpoint)
		}
	}
	if u.Timeout < 0 {
		add(key+".timeout", "%s.timeout is negative: a duration must be zero or more", key)
	}
	if u.Workers < 0 {
		add(key+".workers", "%s.workers is negative: a count must be zero or more", key)
	}
}

func portRange(key string, port int, add func(key, format string, args ...any)) {
	if port < 0 || port > 65535 {
		add(key, "%s %d is not a port: use 0 (random or shared) to 65535", key, port)
	}
}

func validPort(p string) bool {
	var n int
	if _, err := fmt.Sscanf(p, "%d", &n); err != nil || fmt.Sprint(n) != p {
		return false
	}
	return n >= 0 && n <= 65535
}

// validateAuthFiles reports key files that do not exist: the node would
// refuse to start on them, so `config validate` must say so first. (A
// missing auth.token_file is not checked: an edge without its token still
// serves its builds, and CI often writes the token after the config.)
func validateAuthFiles(c *Config, add func(key, format string, args ...any)) {
	files := []struct {
		key, path string
		dir       bool
	}{
		{"auth.public_key_file", c.Auth.PublicKeyFile, false},
		{"auth.public_keys_dir", c.Auth.PublicKeysDir, true},
		{"observability.api_jwt_public_key_file", c.Observability.APIJWTPublicKeyFile, false},
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		info, err := os.Stat(f.path)
		switch {
		case err != nil:
			add(f.key, "%s %q cannot be read: %v", f.key, f.path, errors.Unwrap(err))
		case f.dir && !info.IsDir():
			add(f.key, "%s %q is not a directory", f.key, f.path)
		case !f.dir && info.IsDir():
			add(f.key, "%s %q is a directory, not a file", f.key, f.path)
		}
	}
}
