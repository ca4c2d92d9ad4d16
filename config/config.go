// Package config is the node's configuration: the TOML file, FABRIK_CONFIG_*
// environment overrides and --config-* flags, merged in that order of
// increasing precedence. The structs below are the documentation: every field
// says what it does for the operator.
//
// The toml tags are the single source of every key's name: the file key
// (cache.max_size), the environment variable (FABRIK_CONFIG_CACHE_MAX_SIZE)
// and the flag (--config-cache-max-size) are all derived from them by
// reflection. A `fabrik:"path"` tag marks a filesystem path (relative values
// resolve against the config file's directory); `fabrik:"secret"` marks a
// value that `config show` and the admin API redact.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Role is what a node plays.
type Role string

const (
	// RoleEdge runs next to the build: build-tool adapters, local store,
	// reads and writes through to upstreams.
	RoleEdge Role = "edge"
	// RoleRegional sits behind a load balancer: Fabrik protocol only, local
	// store, backed by its upstreams (S3, usually).
	RoleRegional Role = "regional"
)

// Config is the whole configuration of one node.
type Config struct {
	// Cache is the local tier, always present and always first.
	Cache CacheConfig `toml:"cache"`
	// Upstream lists the tiers behind the local one, tried in array order on
	// reads and written through on writes.
	Upstream []UpstreamConfig `toml:"upstream"`
	// Auth configures JWT validation of incoming requests and the token this
	// node presents to its upstreams.
	Auth AuthConfig `toml:"auth"`
	// BuildTools configures the build-tool adapters of an edge.
	BuildTools BuildToolsConfig `toml:"build_tools"`
	// Fabrik configures the Fabrik protocol server (the regional role's API).
	Fabrik FabrikConfig `toml:"fabrik"`
	// Observability configures logs, health, metrics and the HTTP APIs.
	Observability ObservabilityConfig `toml:"observability"`
	// Runtime configures process-level limits.
	Runtime RuntimeConfig `toml:"runtime"`
	// P2P configures LAN peer discovery and sharing between edges.
	P2P P2PConfig `toml:"p2p"`
	// Daemon configures the per-project daemon started by `activate`.
	Daemon DaemonConfig `toml:"daemon"`
	// Events configures optional NATS publication of eviction and stats events.
	Events EventsConfig `toml:"events"`
	// Recipes configures `fabrik-node run` and the edge's /recipes/v1/ API.
	Recipes RecipesConfig `toml:"recipes"`

	// Path is the file the config was read from ("" for defaults only).
	Path string `toml:"-"`
}

// CacheConfig is the local tier.
type CacheConfig struct {
	// Dir holds the index (Badger) and the blob files. Relative paths resolve
	// against the config file's directory. Default: $XDG_CACHE_HOME/fabrik.
	Dir string `toml:"dir" fabrik:"path"`
	// MaxSize bounds the bytes of stored blobs. Above it the node evicts down
	// to a low-water mark (90%); writes that cannot fit are refused (507).
	// Default 5GB.
	MaxSize ByteSize `toml:"max_size"`
	// EvictionPolicy chooses what is evicted first: lru (least recently used),
	// lfu (least frequently used) or ttl (oldest first). Default lfu.
	EvictionPolicy string `toml:"eviction_policy"`
	// DefaultTTL expires artifacts not accessed for this long (0 = never).
	// Default 7d.
	DefaultTTL Duration `toml:"default_ttl"`
	// MaxArtifactSize refuses single uploads larger than this (413).
	// Default 1GB.
	MaxArtifactSize ByteSize `toml:"max_artifact_size"`
	// Fsync makes blob files and the index durable before a write is
	// acknowledged, so an acknowledged artifact also survives power loss.
	// Without it an acknowledged artifact still survives a crash or kill -9
	// (the kernel keeps the written pages) and a power loss can only lose
	// recent artifacts, never serve a corrupt one (sizes are checked on
	// read). Default false on an edge, where an fsync per artifact would
	// cost builds milliseconds each; the regional templates turn it on.
	Fsync bool `toml:"fsync"`
	// HotSize bounds the in-memory hot tier: bodies of blobs up to 64 KiB
	// kept in memory so the hottest reads touch no file (admission by
	// access frequency, TinyLFU), and what the keys of up to HotSize/4KiB
	// of them resolve to (about 220 bytes each), so such a read touches no
	// index either. 0 disables it. Default 64MB.
	HotSize ByteSize `toml:"hot_size"`
	// InlineMax is the largest artifact stored inside the index (Badger's
	// value log) instead of as a file of its own: below it, a file create
	// and rename per artifact cost more than its bytes. 0 gives every
	// artifact a file. Default 64KiB.
	InlineMax ByteSize `toml:"inline_max"`
	// GitHubActions uses the GitHub Actions cache as a storage tier when an
	// edge runs inside an Actions job (detected from ACTIONS_RUNTIME_TOKEN
	// and ACTIONS_RESULTS_URL or ACTIONS_CACHE_URL). Default (unset): on
	// when detected; false never uses it.
	GitHubActions *bool `toml:"github_actions"`
}

// UpstreamConfig is one tier behind the local one.
type UpstreamConfig struct {
	// URL chooses the tier by scheme: grpc://host:port or grpcs://host:port
	// (a Fabrik regional node), s3://bucket/prefix/ (S3 or compatible).
	URL string `toml:"url"`
	// Timeout bounds one request to this upstream: the wait for its answer
	// (the first byte of a read) and every stall while a body streams, not a
	// whole large transfer. Default DefaultUpstreamTimeout (30s); read it
	// with RequestTimeout.
	Timeout Duration `toml:"timeout"`
	// ReadOnly: never written to. With write_through = true set explicitly
	// as well, it is a replica instead (IsReplica): written through, never
	// read, as in cross-region replication, where reading the far region
	// costs latency and egress.
	ReadOnly bool `toml:"read_only"`
	// Permanent: never deleted from. Without it, an admin delete or clear
	// on this node also deletes the artifact (every artifact this node holds,
	// for clear) from this upstream, unless it is read_only. Default false.
	Permanent bool `toml:"permanent"`
	// WriteThrough writes every new artifact to this upstream (default true).
	WriteThrough *bool `toml:"write_through"`
	// Workers is the number of concurrent write-through uploads to this
	// upstream. Default DefaultUploadWorkers (4); read it with UploadWorkers.
	Workers int `toml:"workers"`
	// Region is the S3 region (S3 upstreams; AWS_REGION is the fallback).
	Region string `toml:"region"`
	// Endpoint is an S3-compatible endpoint URL (MinIO, R2...); empty for AWS.
	Endpoint string `toml:"endpoint"`
	// AccessKey and SecretKey are S3 credentials (fallback AWS_ACCESS_KEY_ID
	// and AWS_SECRET_ACCESS_KEY, then the SDK's default chain).
	AccessKey string `toml:"access_key" fabrik:"secret"`
	SecretKey string `toml:"secret_key" fabrik:"secret"`
	// PathStyle addresses buckets as endpoint/bucket (needed by most
	// S3-compatible servers). Default: true when Endpoint is set.
	PathStyle *bool `toml:"path_style"`
}

// Defaults of [[upstream]] keys that have no value in Default (an upstream
// list is empty by default): code reads them through the methods below, so
// each is written here once.
const (
	// DefaultUpstreamTimeout is timeout's default: a regional or S3 that
	// stops answering turns into a miss within it, never a build that hangs.
	DefaultUpstreamTimeout = 30 * time.Second
	// DefaultUploadWorkers is workers' default.
	DefaultUploadWorkers = 4
)

// IsReplica reports a write-only replica: read_only and an explicit
// write_through = true. The node writes every new artifact to it and never
// reads from it (the spec's cross-region replication: "write_through = true
// # Replicate writes", "read_only = true # Don't read from EU").
func (u UpstreamConfig) IsReplica() bool {
	return u.ReadOnly && u.WriteThrough != nil && *u.WriteThrough
}

// IsWriteThrough reports the effective write_through (default true).
func (u UpstreamConfig) IsWriteThrough() bool { return u.WriteThrough == nil || *u.WriteThrough }

// RequestTimeout is the effective timeout (DefaultUpstreamTimeout when unset).
func (u UpstreamConfig) RequestTimeout() time.Duration {
	if u.Timeout <= 0 {
		return DefaultUpstreamTimeout
	}
	return u.Timeout.D()
}

// UploadWorkers is the effective workers (DefaultUploadWorkers when unset).
func (u UpstreamConfig) UploadWorkers() int {
	if u.Workers <= 0 {
		return DefaultUploadWorkers
	}
	return u.Workers
}

// AuthConfig configures JWT RS256 validation and the node's own token.
type AuthConfig struct {
	// PublicKeyFile is one PEM public key; it matches any kid.
	PublicKeyFile string `toml:"public_key_file" fabrik:"path"`
	// PublicKeysDir holds one PEM file per key, named <kid>.pem; files added,
	// changed or removed are picked up without restart.
	PublicKeysDir string `toml:"public_keys_dir" fabrik:"path"`
	// JWKSURL is fetched every KeyRefreshInterval; the last good set stays in
	// force when a refresh fails.
	JWKSURL string `toml:"jwks_url"`
	// KeyRefreshInterval is how often JWKS is refetched and key files
	// rescanned. Default 5m.
	KeyRefreshInterval Duration `toml:"key_refresh_interval"`
	// Required turns checking on or off. Default: on when any key source is
	// configured, off otherwise (logged loudly at start).
	Required *bool `toml:"required"`
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer   string `toml:"issuer"`
	Audience string `toml:"audience"`
	// Leeway tolerates clock skew on exp, nbf and iat. Default 30s.
	Leeway Duration `toml:"leeway"`
	// TenantClaim names the token claim that binds a request to one tenant
	// (default "project_id"). A token carrying it sees only that tenant's
	// entries under any name the client chooses (Turborepo teams, Bazel
	// instances, buckets, repositories...); blobs stay deduplicated on disk
	// but their existence is never revealed across tenants. A machine token
	// that serves several tenants (an edge in front of a regional) lists
	// them in a "tenants" claim instead ("*" for all).
	TenantClaim string `toml:"tenant_claim"`
	// RequireTenant refuses tokens that carry neither claim (admin tokens
	// excepted). Default false: such tokens keep single-tenant behaviour.
	RequireTenant bool `toml:"require_tenant"`
	// Token is this node's machine token, sent to its upstreams (env
	// FABRIK_TOKEN is the fallback). TokenFile reads it from a file instead.
	Token     string `toml:"token" fabrik:"secret"`
	TokenFile string `toml:"token_file" fabrik:"path"`
}

// ResolveToken returns the node's own token: Token (which already includes
// the FABRIK_TOKEN fallback) or else the trimmed contents of TokenFile; ""
// when neither is set.
func (a AuthConfig) ResolveToken() (string, error) {
	if a.Token != "" || a.TokenFile == "" {
		return a.Token, nil
	}
	b, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return "", fmt.Errorf("reading auth.token_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// BuildToolsConfig configures the edge's adapters.
type BuildToolsConfig struct {
	// Enabled lists the adapters to run: gradle, bazel, nx, turborepo,
	// sccache (its WebDAV under /webdav/), buildkit, ccache (under
	// /ccache/), gocache (under /gocache/). Default: all that are implemented.
	Enabled []string `toml:"enabled"`
	// HTTPBind is the one HTTP listener shared by the HTTP adapters.
	HTTPBind string `toml:"http_bind"`
	// GRPCBind is the Bazel REAPI gRPC listener.
	GRPCBind string `toml:"grpc_bind"`
	// Per-tool settings.
	Gradle    ToolConfig `toml:"gradle"`
	Bazel     ToolConfig `toml:"bazel"`
	Nx        ToolConfig `toml:"nx"`
	Turborepo ToolConfig `toml:"turborepo"`
	Buildkit  ToolConfig `toml:"buildkit"`
	Ccache    ToolConfig `toml:"ccache"`
	// Sccache is the S3 API (its own listener, and S3 key pairs).
	Sccache SccacheConfig `toml:"sccache"`
	// Gocache is the go command's build cache under /gocache/, for
	// `fabrik-node gocacheprog` (GOCACHEPROG).
	Gocache ToolConfig `toml:"gocache"`
}

// ToolConfig gives one adapter its own listener instead of the shared one.
type ToolConfig struct {
	// Port (0 = the shared listener; for `fabrik-node bazel`, 0 = random).
	Port int `toml:"port"`
	// Bind is the address to listen on with Port (default 127.0.0.1), or a
	// whole "host:port", which gives the tool its own listener by itself.
	Bind string `toml:"bind"`
	// AutoConfigure exports the tool's cache URL (GRADLE_BUILD_CACHE_URL...)
	// to commands the node wraps (default true). For Gradle, shell
	// activation also installs an init script under ~/.gradle/init.d/ that
	// points Gradle's remote build cache at GRADLE_BUILD_CACHE_URL.
	AutoConfigure *bool `toml:"auto_configure"`
}

// SccacheConfig is the S3-compatible API sccache (and any S3 client) talks
// to. S3 addresses buckets at the root of a host, so it always has a
// listener of its own.
type SccacheConfig struct {
	// Bind is the S3 API's listen address (default 127.0.0.1:5073). With
	// Port set, Port replaces Bind's port.
	Bind string `toml:"bind"`
	// Port overrides the port of Bind (0 = keep Bind's).
	Port int `toml:"port"`
	// AutoConfigure exports SCCACHE_* to commands the node wraps (default true).
	AutoConfigure *bool `toml:"auto_configure"`
	// AccessKeyID and SecretAccessKey are the key pair S3 clients sign with
	// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY on the client). When set,
	// every SigV4 signature is verified against them; when empty, any
	// well-formed signature is accepted. With [auth] on they are required,
	// and the client's session token (AWS_SESSION_TOKEN) carries its JWT.
	AccessKeyID     string `toml:"access_key_id"`
	SecretAccessKey string `toml:"secret_access_key" fabrik:"secret"`
	// VirtualHostDomain enables virtual-host style requests
	// (<bucket>.<domain>); path style (<domain>/<bucket>) always works.
	// Default localhost.
	VirtualHostDomain string `toml:"virtual_host_domain"`
	// MultipartExpiry discards multipart uploads neither completed nor
	// aborted after this long (default 24h).
	MultipartExpiry Duration `toml:"multipart_expiry"`
}

// FabrikConfig is the Fabrik protocol server.
type FabrikConfig struct {
	// Enabled serves the Fabrik protocol (always on for the regional role).
	Enabled bool `toml:"enabled"`
	// Bind is the gRPC listen address. Default 0.0.0.0:7070 on a regional
	// node, 127.0.0.1:7070 on an edge.
	Bind string `toml:"bind"`
}

// ObservabilityConfig configures logs and the operations endpoints.
type ObservabilityConfig struct {
	// LogLevel: debug, info, warn, error. Default info.
	LogLevel string `toml:"log_level"`
	// LogFormat: text, json or auto (the default: text when stderr is a
	// terminal, JSON otherwise, e.g. a daemon's log file or a container).
	LogFormat string `toml:"log_format"`
	// HealthBind serves GET /health (public). Default 127.0.0.1:8888 on an
	// edge, 0.0.0.0:8888 on a regional node.
	HealthBind string `toml:"health_bind"`
	// HealthEnabled turns the health listener on (default true).
	HealthEnabled *bool `toml:"health_enabled"`
	// APIBind serves /metrics and /api/v1 (JWT-protected). Default
	// 127.0.0.1:9091 on an edge, 0.0.0.0:9091 on a regional node.
	// MetricsBind is the spec's older name for the same listener.
	APIBind     string `toml:"api_bind"`
	MetricsBind string `toml:"metrics_bind"`
	// MetricsEnabled serves /metrics (default true).
	MetricsEnabled *bool `toml:"metrics_enabled"`
	// CacheQueryAPIEnabled serves /api/v1/artifacts and /api/v1/stats (default true).
	CacheQueryAPIEnabled *bool `toml:"cache_query_api_enabled"`
	// AdminAPIEnabled serves /api/v1/admin (default false).
	AdminAPIEnabled bool `toml:"admin_api_enabled"`
	// APIAuthRequired demands a valid token on the API port. Default: true
	// whenever auth keys are configured.
	APIAuthRequired *bool `toml:"api_auth_required"`
	// APIJWTPublicKeyFile verifies API tokens with a key of their own instead
	// of the [auth] keys (optional).
	APIJWTPublicKeyFile string `toml:"api_jwt_public_key_file" fabrik:"path"`
	// TracingEnabled exports traces to TracingEndpoint (reserved; not yet
	// implemented, accepted so spec configs stay valid).
	TracingEnabled  bool   `toml:"tracing_enabled"`
	TracingEndpoint string `toml:"tracing_endpoint"`
}

// RuntimeConfig configures process limits.
type RuntimeConfig struct {
	// GracefulShutdownTimeout bounds the drain of in-flight requests, and
	// then the flush of queued write-through uploads (Node.Stop).
	// Default 30s.
	GracefulShutdownTimeout Duration `toml:"graceful_shutdown_timeout"`
	// DrainDelay is how long a stopping node keeps serving while /health
	// answers 503 "draining", before its listeners close: long enough for a
	// load balancer's health checks to take it out (HAProxy: inter x fall).
	// Default 0 (stop at once); regionals behind a load balancer set it.
	DrainDelay Duration `toml:"drain_delay"`
	// MaxConcurrentRequests bounds in-flight requests per listener; past it
	// HTTP answers 503 with Retry-After and gRPC UNAVAILABLE, which clients
	// retry. Default 10,000; 0 = no limit.
	MaxConcurrentRequests int `toml:"max_concurrent_requests"`
	// MaxConnections is the budget of open connections across all of the
	// node's listeners. At the budget, the connection idle longest is closed
	// to admit a new one (so idle keep-alives cannot lock out clients with
	// work); when all are busy, newcomers get 503. Default 0: three quarters
	// of the process's open-file limit.
	MaxConnections int `toml:"max_connections"`
	// IdleTimeout closes HTTP keep-alive connections idle this long, and gRPC
	// connections with no stream for five times as long. Default 60s.
	IdleTimeout Duration `toml:"idle_timeout"`
	// ReadHeaderTimeout bounds how long a client may take to send request
	// headers (slow-loris). Default 10s.
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	// WorkerThreads caps GOMAXPROCS (0 = number of CPUs).
	WorkerThreads int `toml:"worker_threads"`
	// AllowedHosts are Host names a loopback listener accepts besides
	// localhost, *.localhost and loopback addresses. Any other Host is
	// refused (403), which stops DNS rebinding: a web page whose name
	// resolves to 127.0.0.1 cannot reach a developer's edge. Empty by default.
	AllowedHosts []string `toml:"allowed_hosts"`
	// CORSAllowedOrigins may make cross-origin requests from a browser
	// ("https://app.example"); they get Access-Control-Allow-Origin, and a
	// state-changing request from any other Origin is refused. Default:
	// none (no wildcard: build tools never send an Origin).
	CORSAllowedOrigins []string `toml:"cors_allowed_origins"`
}

// P2PConfig configures LAN peer sharing between edges.
type P2PConfig struct {
	// Enabled turns discovery and serving on.
	Enabled bool `toml:"enabled"`
	// Bind is the peer-serving listen address (default 0.0.0.0:7071).
	Bind string `toml:"bind"`
	// BindPort overrides the port of Bind (0 = keep Bind's; the spec's name).
	BindPort int `toml:"bind_port"`
	// Secret is the shared HMAC key (16 characters or more); peers without it
	// are ignored.
	Secret string `toml:"secret" fabrik:"secret"`
	// Advertise announces this node over mDNS (default true).
	Advertise *bool `toml:"advertise"`
	// Discovery browses mDNS for other peers (default true).
	Discovery *bool `toml:"discovery"`
	// MaxPeers bounds the peers tracked at once (0 = 20).
	MaxPeers int `toml:"max_peers"`
	// ConsentMode decides whether a peer may read from this node:
	// notify-once, notify-always, auto-approve or disabled (always-ask and
	// always-allow are accepted as older names).
	ConsentMode string `toml:"consent_mode"`
	// ConsentTimeout bounds the wait for the user's answer.
	ConsentTimeout Duration `toml:"consent_timeout"`
	// AutoApproveSameUser approves the same user's other machines.
	AutoApproveSameUser bool `toml:"auto_approve_same_user"`
	// RequestTimeout bounds one request to a peer.
	RequestTimeout Duration `toml:"request_timeout"`
	// MaxConcurrentRequests bounds requests in flight to peers (0 = 5).
	MaxConcurrentRequests int `toml:"max_concurrent_requests"`
	// Peers are static peer addresses, used besides mDNS discovery.
	Peers []string `toml:"peers"`
}

// DaemonConfig configures the per-project daemon.
type DaemonConfig struct {
	// StateDir holds each daemon's state directory (<id>/pid, ports.json,
	// config_path.txt). Default: $XDG_STATE_HOME/fabrik/daemons
	// (~/.local/state/fabrik/daemons).
	StateDir string `toml:"state_dir" fabrik:"path"`
	// Socket is an optional unix socket path.
	Socket string `toml:"socket" fabrik:"path"`
	// HTTPPort and GRPCPort pin the daemon's listeners (0 = random, the
	// default, so that several projects' daemons never collide). The
	// daemon always binds loopback; ports.json says what it bound.
	HTTPPort int `toml:"http_port"`
	GRPCPort int `toml:"grpc_port"`
	// HealthPort, APIPort, S3Port (the sccache S3 API) and FabrikPort pin
	// the daemon's other listeners the same way (0 = random).
	HealthPort int `toml:"health_port"`
	APIPort    int `toml:"api_port"`
	S3Port     int `toml:"s3_port"`
	FabrikPort int `toml:"fabrik_port"`
}

// EventsConfig configures NATS events.
type EventsConfig struct {
	// NATSURL: "" (off), "embedded" (in-process server) or nats://host:port.
	NATSURL string `toml:"nats_url"`
	// NodeName appears in subjects fabrik.<node>.evict (default: hostname).
	NodeName string `toml:"node_name"`
}

// Default returns the embedded defaults for a role: everything needed to run
// with no config file at all. It reads XDG_CACHE_HOME and the home directory
// of this process; Load uses the environment it is given instead.
// RecipesConfig configures recipes: script recipes and Tengo recipes run
// by `fabrik-node run`, cached through the node's tiers.
type RecipesConfig struct {
	// Enabled serves /recipes/v1/ on an edge's shared HTTP listener
	// (default true): `fabrik-node run` stores through it while a daemon
	// owns the cache directory.
	Enabled *bool `toml:"enabled"`
	// Timeout bounds one Tengo target's wall-clock time, commands it runs
	// included (default 30m).
	Timeout Duration `toml:"timeout"`
	// MaxAllocs bounds the objects one Tengo target may allocate (default
	// 10000000).
	MaxAllocs int `toml:"max_allocs"`
	// AllowOS gives Tengo recipes the os module (default false: recipes
	// reach the world only through the fabrik module).
	AllowOS bool `toml:"allow_os"`
}

// ServeAPI reports whether an edge serves /recipes/v1/.
func (r RecipesConfig) ServeAPI() bool { return r.Enabled == nil || *r.Enabled }

func Default(role Role) Config {
	home, _ := os.UserHomeDir()
	return defaults(role, os.Getenv, home)
}

func defaults(role Role, getenv func(string) string, home string) Config {
	c := Config{
		Cache: CacheConfig{
			Dir:             defaultCacheDir(getenv, home),
			MaxSize:         5 * 1000 * 1000 * 1000,
			EvictionPolicy:  "lfu",
			DefaultTTL:      Duration(7 * 24 * time.Hour),
			MaxArtifactSize: 1000 * 1000 * 1000,
			Fsync:           false,
			HotSize:         64 * 1000 * 1000,
			InlineMax:       64 << 10,
		},
		Auth: AuthConfig{KeyRefreshInterval: Duration(5 * time.Minute), Leeway: Duration(30 * time.Second), TenantClaim: "project_id"},
		BuildTools: BuildToolsConfig{
			Enabled:  []string{"gradle", "bazel", "nx", "turborepo", "sccache", "ccache", "buildkit", "gocache"},
			HTTPBind: "127.0.0.1:5071",
			GRPCBind: "127.0.0.1:9092",
			Sccache: SccacheConfig{
				Bind: "127.0.0.1:5073", VirtualHostDomain: "localhost",
				MultipartExpiry: Duration(24 * time.Hour),
			},
		},
		Fabrik: FabrikConfig{Bind: "127.0.0.1:7070"},
		Observability: ObservabilityConfig{
			LogLevel:   "info",
			LogFormat:  "auto",
			HealthBind: "127.0.0.1:8888",
			APIBind:    "127.0.0.1:9091",
		},
		Runtime: RuntimeConfig{
			GracefulShutdownTimeout: Duration(30 * time.Second),
			MaxConcurrentRequests:   10000,
			IdleTimeout:             Duration(60 * time.Second),
			ReadHeaderTimeout:       Duration(10 * time.Second),
		},
		P2P: P2PConfig{
			Bind:           "0.0.0.0:7071",
			ConsentMode:    "notify-once",
			ConsentTimeout: Duration(30 * time.Second),
			RequestTimeout: Duration(5 * time.Second),
		},
	}
	c.Recipes = RecipesConfig{Timeout: Duration(30 * time.Minute), MaxAllocs: 10_000_000}
	if role == RoleRegional {
		c.BuildTools.Enabled = nil
		c.Fabrik.Enabled = true
		c.Fabrik.Bind = "0.0.0.0:7070"
		c.Observability.HealthBind = "0.0.0.0:8888"
		c.Observability.APIBind = "0.0.0.0:9091"
	}
	return c
}

func defaultCacheDir(getenv func(string) string, home string) string {
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "fabrik")
	}
	if home != "" {
		return filepath.Join(home, ".cache", "fabrik")
	}
	return filepath.Join(os.TempDir(), "fabrik-cache")
}
