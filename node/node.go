// Package node builds a whole fabrik-node from a config: the store, the
// actors (local tier, upstream tiers, upload pool, router, listeners) and the
// adapters for its role. Tests and the CLI build nodes the same way:
// New -> Start -> (Addr, Cache) -> Stop.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/listener"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/actors/router"
	"github.com/tuist/fabrik-node/actors/uploadpool"
	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/adapters/browser"
	"github.com/tuist/fabrik-node/auth"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/limits"
	"github.com/tuist/fabrik-node/metrics"
	"github.com/tuist/fabrik-node/ops"
	"github.com/tuist/fabrik-node/store"
)

// Version is stamped by the build (-ldflags "-X .../node.Version=...").
var Version = "0.1.0-dev"

// Options describe the node to build.
type Options struct {
	Role   config.Role
	Config config.Config
	Logger *slog.Logger
}

// Node is one running fabrik-node.
type Node struct {
	opts    Options
	cfg     config.Config
	log     *slog.Logger
	started time.Time
	ready   atomic.Bool
	// draining is set by Stop for runtime.drain_delay before the listeners
	// close, so /health tells load balancers to route elsewhere first.
	draining atomic.Bool

	sys     *actors.System
	store   *store.Store
	metrics *metrics.Set
	p2p     *p2pParts
	cache   *router.Cache
	local   actors.Ref
	router  actors.Ref
	// uploads is the upload pool (invalid without write-through upstreams),
	// flushed on Stop.
	uploads actors.Ref
	// stopOrder lists the core actors in the order they stop, after the
	// listeners and adapters: the router, the pool, the tiers, local.
	stopOrder []actors.Ref
	addrs     map[string]string
	// adapterRefs are the HTTP adapters' actors: they stop after the
	// listeners (so in-flight requests finish) and before the router.
	adapterRefs []actors.Ref
	// listenerRefs are the listener actors, stopped first.
	listenerRefs []actors.Ref
	closers      []func()
	authn        *auth.Authenticator
	// conns is the connection budget all listeners share.
	conns *limits.Conns
	// ops is the operations surface's state (API, events, admin hooks).
	ops opsParts
	// upstreamCreds is the node's machine token for its upstreams (nil when
	// none is configured).
	upstreamCreds credentials.PerRPCCredentials
	// breakers are the upstreams' circuit breaker states, for /health.
	breakers breakers
}

// New validates the options; Start does the work.
func New(opts Options) (*Node, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Role == "" {
		opts.Role = config.RoleEdge
	}
	if opts.Role != config.RoleEdge && opts.Role != config.RoleRegional {
		return nil, fmt.Errorf("unknown role %q: use edge or regional", opts.Role)
	}
	return &Node{opts: opts, cfg: opts.Config, log: opts.Logger, addrs: map[string]string{}}, nil
}

// Start opens the store, spawns the actors and starts every listener. On
// error everything already started is stopped again: a node never runs
// half-configured.
func (n *Node) Start() (err error) {
	n.started = time.Now()
	defer func() {
		if err != nil {
			n.Stop(context.Background())
		}
	}()
	n.sys = actors.NewSystem()
	c := n.cfg.Cache
	inlineMax := int64(c.InlineMax)
	if inlineMax == 0 {
		inlineMax = -1 // "0" in the config turns inline storage off
	}
	n.store, err = store.Open(store.Options{
		Dir:        c.Dir,
		MaxSize:    int64(c.MaxSize),
		Policy:     c.EvictionPolicy,
		DefaultTTL: c.DefaultTTL.D(),
		Fsync:      c.Fsync,
		HotSize:    int64(c.HotSize),
		InlineMax:  inlineMax,
		Logger:     n.log,
		OnEvict:    n.onEvict,
	})
	if err != nil {
		return fmt.Errorf("open store in %s: %w", c.Dir, err)
	}
	n.metrics = metrics.New(
		func() float64 { b, _ := n.store.Usage(); return float64(b) },
		func() float64 { _, o := n.store.Usage(); return float64(o) },
	)
	if err := n.startAuth(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	n.local, err = n.sys.Spawn("local", local.New(n.store, c.DefaultTTL.D(), time.Minute, n.log))
	if err != nil {
		return err
	}
	ups, err := n.startUpstreams()
	if err != nil {
		return err
	}
	for _, t := range ups.tiers {
		n.ops.upstreamNames = append(n.ops.upstreamNames, t.Name)
	}
	peers, err := n.startP2PTier()
	if err != nil {
		return fmt.Errorf("p2p: %w", err)
	}
	n.router, err = n.sys.Spawn("router", router.New(router.Options{
		Peers:     peers,
		Local:     n.local,
		Stager:    n.store.Stager(),
		Upstreams: ups.tiers,
		Uploads:   ups.pool,
		Logger:    n.log,
	}))
	if err != nil {
		return err
	}
	// Stop order is the reverse of dependencies: the router before what it
	// calls, the pool before the tiers it uploads to.
	n.uploads = ups.pool
	n.stopOrder = append([]actors.Ref{n.router}, ups.pool)
	n.stopOrder = append(n.stopOrder, ups.actors...)
	n.stopOrder = append(n.stopOrder, n.local)
	n.cache = router.NewCache(n.router, n.store)

	if err := n.startListeners(); err != nil {
		return err
	}
	n.warnUnimplemented()
	n.ready.Store(true)
	n.log.Info("fabrik-node started", "role", string(n.opts.Role), "version", Version, "cache_dir", c.Dir, "upstreams", len(ups.tiers))
	return nil
}

// startListeners opens the role's listeners and hands each to a listener
// actor.
func (n *Node) startListeners() error {
	obs := n.cfg.Observability
	grace := n.cfg.Runtime.GracefulShutdownTimeout.D()

	if obs.HealthEnabled == nil || *obs.HealthEnabled {
		health := http.NewServeMux()
		(&ops.Health{Started: n.started, Version: Version, Ready: n.ready.Load, Draining: n.draining.Load, Figures: n.healthFigures}).Routes(health)
		if err := n.serveHTTP("health", obs.HealthBind, health, grace); err != nil {
			return err
		}
	}
	api := http.NewServeMux()
	apiGuard, err := n.apiGuard()
	if err != nil {
		return err
	}
	n.registerAPI(api, apiGuard)
	if err := n.serveHTTP("api", apiBind(obs), api, grace); err != nil {
		return err
	}
	if n.opts.Role == config.RoleRegional || n.cfg.Fabrik.Enabled {
		if err := n.startFabrik(grace); err != nil {
			return err
		}
	}
	if n.opts.Role == config.RoleEdge {
		if err := n.startEdgeAdapters(grace); err != nil {
			return err
		}
	}
	return n.startP2PServing(grace)
}

func apiBind(o config.ObservabilityConfig) string {
	if o.APIBind == "" {
		return o.MetricsBind
	}
	return o.APIBind
}

// serveHTTP listens on addr and spawns the actor that owns the listener.
func (n *Node) serveHTTP(name, addr string, h http.Handler, grace time.Duration) error {
	if addr == "" {
		return nil
	}
	rt := n.cfg.Runtime
	h = browser.Policy{CheckHost: isLoopback(addr), AllowedHosts: rt.AllowedHosts, AllowedOrigins: rt.CORSAllowedOrigins}.Wrap(h)
	h = limits.NewRequests(name, rt.MaxConcurrentRequests, n.log).Wrap(h)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: rt.ReadHeaderTimeout.D(),
		IdleTimeout:       rt.IdleTimeout.D(),
		ConnState:         n.connBudget().ConnState,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	return n.serve(name, addr, srv, grace)
}

func (n *Node) serve(name, addr string, srv listener.Server, grace time.Duration) error {
	if err := n.checkExposure(name, addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for %s on %s: %w", name, addr, err)
	}
	n.addrs[name] = ln.Addr().String()
	_, isHTTP := srv.(*http.Server)
	ln = n.connBudget().Listener(ln, isHTTP)
	ref, err := n.sys.Spawn("listener-"+name, listener.New(name, ln, srv, grace, n.log))
	if err != nil {
		ln.Close()
		return err
	}
	n.listenerRefs = append(n.listenerRefs, ref)
	return nil
}

// Addr returns the bound address of a listener ("health", "api", "http",
// "grpc", "fabrik"), useful when the config asked for port 0.
func (n *Node) Addr(name string) string { return n.addrs[name] }

// Addrs returns every listener's bound address by name (a copy): what a
// daemon publishes in its ports.json, whatever listeners the node has.
func (n *Node) Addrs() map[string]string { return maps.Clone(n.addrs) }

// Cache is the node's router seen as an adapters.Cache (tests, wrappers).
func (n *Node) Cache() adapters.Cache { return n.cache }

// Metrics exposes the node's metric set.
func (n *Node) Metrics() *metrics.Set { return n.metrics }

// Ready reports whether the node serves requests.
func (n *Node) Ready() bool { return n.ready.Load() }

// Stop drains listeners, stops actors in dependency order and closes the
// store. Safe to call on a partly started node.
func (n *Node) Stop(ctx context.Context) error {
	n.drain(ctx)
	n.ready.Store(false)
	if n.sys != nil {
		// Listeners first (clients drain), then the adapters' mounts, then,
		// once nothing can queue another upload, the pool's flush, then the
		// router, the pool and the tiers.
		for _, ref := range slices.Concat(n.listenerRefs, n.adapterRefs) {
			n.sys.Stop(ref)
		}
		n.flushUploads(ctx)
		for _, ref := range n.stopOrder {
			n.sys.Stop(ref)
		}
		n.listenerRefs, n.adapterRefs, n.stopOrder = nil, nil, nil
	}
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
	n.closers = nil
	var err error
	if n.store != nil {
		err = n.store.Close()
		n.store = nil
	}
	if n.sys != nil {
		n.sys.Shutdown()
		n.sys = nil
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// flushUploads gives the upload pool up to graceful_shutdown_timeout (and
// ctx) to deliver what it holds to the upstreams that take it
// (uploadpool.Flush): a node that stops for good, a regional scaled down
// or a one-shot edge, would otherwise keep acknowledged artifacts on its
// own disk until it starts again, if ever. An upstream that is failing is
// not waited for; its jobs stay persisted.
func (n *Node) flushUploads(ctx context.Context) {
	if !n.uploads.Valid() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Runtime.GracefulShutdownTimeout.D())
	defer cancel()
	start := time.Now()
	res, err := actors.AskFor[*uploadpool.FlushResult](ctx, n.uploads, &uploadpool.Flush{})
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case err != nil:
		n.log.Warn("write-through not flushed before shutdown: what is queued waits for the next start", "took", took, "err", err)
	case res.Left > 0:
		n.log.Info("write-through flushed but for failing upstreams: their uploads wait for the next start", "left", res.Left, "took", took)
	default:
		n.log.Debug("write-through flushed", "took", took)
	}
}

// drain keeps a started node serving for runtime.drain_delay while /health
// answers "draining" (503), so a load balancer stops sending new requests
// before the listeners close; an expired ctx cuts it short.
func (n *Node) drain(ctx context.Context) {
	d := n.cfg.Runtime.DrainDelay.D()
	if d <= 0 || !n.ready.Load() {
		return
	}
	n.draining.Store(true)
	n.log.Info("draining before shutdown", "drain_delay", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Apply adopts the live keys of a reloaded config (config.LiveKeys): size
// bound, eviction policy, TTL and auth key sources. The log level is the
// caller's (SetLogLevelFunc), since the node does not own its logger.
func (n *Node) Apply(cfg config.Config) error {
	res, err := actors.AskFor[*local.SetLimitsResult](context.Background(), n.local, &local.SetLimits{
		MaxSize: int64(cfg.Cache.MaxSize),
		Policy:  cfg.Cache.EvictionPolicy,
		TTL:     cfg.Cache.DefaultTTL.D(),
	})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("apply cache limits: %w", err)
	}
	if n.authn.Enabled() && cfg.Auth != n.cfg.Auth {
		// Reload only while auth stays on: the listeners' guards were built
		// for the auth state the node started with.
		if err := n.authn.Reload(cfg.Auth); err != nil {
			return fmt.Errorf("apply auth keys: %w", err)
		}
		n.cfg.Auth = cfg.Auth
	}
	n.cfg.Cache.MaxSize, n.cfg.Cache.EvictionPolicy, n.cfg.Cache.DefaultTTL = cfg.Cache.MaxSize, cfg.Cache.EvictionPolicy, cfg.Cache.DefaultTTL
	n.cfg.Observability.LogLevel = cfg.Observability.LogLevel
	return nil
}

// warnUnimplemented says at start which configured features this version
// accepts in its config but does not run yet, rather than ignoring them
// silently.
func (n *Node) warnUnimplemented() {
	if n.cfg.Observability.TracingEnabled {
		n.log.Warn("tracing is not available in this version; ignored")
	}
}

// connBudget is the connection budget every listener of the node shares
// (runtime.max_connections, or three quarters of the open-file limit).
func (n *Node) connBudget() *limits.Conns {
	if n.conns == nil {
		max := n.cfg.Runtime.MaxConnections
		if max == 0 {
			max = limits.DefaultMaxConnections()
		}
		n.conns = limits.NewConns(max, n.log)
	}
	return n.conns
}
