package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/events"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/ops"
	"github.com/tuist/fabrik-node/store"
)

// opsParts is the operations surface's state in a node: the /api/v1
// handlers, the events publisher and the admin API's hooks.
type opsParts struct {
	api *ops.API
	// events is set once at start; the store's eviction callback reads it
	// from its own goroutines. Nil when [events] nats_url is empty.
	events atomic.Pointer[events.Publisher]

	mu sync.Mutex // serializes admin config changes (n.cfg has no lock of its own)
	// upstreamNames are the upstream tiers in priority order (dashboard).
	upstreamNames []string
	// setLogLevel applies observability.log_level to the node's logger;
	// nil refuses the key (the node cannot change its logger's level).
	setLogLevel func(slog.Level)
}

// opsByNode holds each node's opsParts until Node has a field for it (see
// opsOf); several nodes share a test process, so it is keyed by node.
// opsOf returns the node's operations state.
func (n *Node) opsOf() *opsParts { return &n.ops }

// SetLogLevelFunc lets the admin API change the log level: the CLI passes
// its slog.LevelVar's Set. Without it, observability.log_level is refused.
func (n *Node) SetLogLevelFunc(f func(slog.Level)) {
	o := n.opsOf()
	o.mu.Lock()
	o.setLogLevel = f
	o.mu.Unlock()
}

// registerAPI mounts the API port's endpoints: /metrics, the cache query API
// and (when enabled) the admin API. It also starts the events publisher:
// it runs once per Start, after the store, metrics and local tier exist and
// before any listener accepts, which is where events must begin.
func (n *Node) registerAPI(mux *http.ServeMux, guard adapters.Guard) {
	obs := n.cfg.Observability
	if obs.MetricsEnabled == nil || *obs.MetricsEnabled {
		(&ops.Metrics{Set: n.metrics, Guard: guard}).Routes(mux)
	}
	o := n.opsOf()
	o.api = &ops.API{
		Index:   n.store,
		Metrics: n.metrics,
		Guard:   guard,
		Query:   obs.CacheQueryAPIEnabled == nil || *obs.CacheQueryAPIEnabled,
		Logger:  n.log,
	}
	if obs.AdminAPIEnabled {
		o.api.Admin = nodeAdmin{n}
	}
	n.startDashboard(mux, o)
	n.registerP2PAPI(mux, guard)
	o.api.Routes(mux)
	n.startEvents(o)
}

// startEvents connects the events publisher when [events] nats_url is set.
// Events are optional: a publisher that cannot start is logged, and the node
// runs without it rather than refusing to start.
func (n *Node) startEvents(o *opsParts) {
	ec := n.cfg.Events
	if ec.NATSURL == "" {
		return
	}
	p, err := events.Start(n.sys, events.Options{
		URL:     ec.NATSURL,
		Node:    ec.NodeName,
		Stats:   func() (any, error) { return o.api.Stats() },
		Metrics: n.metrics,
		Logger:  n.log,
	})
	if err != nil {
		n.log.Error("events disabled", "err", err)
		return
	}
	o.events.Store(p)
	// Closers run after the actors stopped and before the store closes:
	// evictions during shutdown are no longer published, which is fine.
	n.closers = append(n.closers, p.Stop)
}

// onEvict is the store's eviction callback (called outside store locks,
// possibly before registerAPI ran: eviction at Open finds no publisher).
func (n *Node) onEvict(e store.EvictEvent) {
	if n.metrics != nil {
		n.metrics.Evicted(1)
	}
	if p := n.ops.events.Load(); p != nil {
		p.Evicted(e.Hash, e.Size, e.Reason)
	}
}

// Events is the node's events publisher (nil when events are off).
func (n *Node) Events() *events.Publisher { return n.ops.events.Load() }

// nodeAdmin is the admin API's view of the node (ops.Admin).
type nodeAdmin struct{ n *Node }

var _ ops.Admin = nodeAdmin{}

// Evict evicts from the local tier through its actor, so it is serialized
// with commits.
func (a nodeAdmin) Evict(ctx context.Context, target int64, policy string) (int, int64, error) {
	return a.n.adminEvict(ctx, target, policy)
}

func (a nodeAdmin) Clear(ctx context.Context) error { return a.n.adminClear(ctx) }

// Delete goes through the router, which knows which upstreams are permanent.
func (a nodeAdmin) Delete(ctx context.Context, ref messages.Ref) (bool, error) {
	return a.n.cache.DeleteEverywhere(ctx, ref)
}

func (a nodeAdmin) Config() (map[string]any, []string) { return a.n.adminConfig() }

func (a nodeAdmin) UpdateConfig(ctx context.Context, changes map[string]string) (map[string]any, error) {
	return a.n.adminUpdateConfig(ctx, changes)
}

func (n *Node) adminEvict(ctx context.Context, target int64, policy string) (int, int64, error) {
	if policy == "" {
		policy = n.store.Policy()
	}
	r, err := actors.AskFor[*local.EvictResult](ctx, n.local, &local.Evict{TargetBytes: target, Policy: policy})
	if err != nil {
		return 0, 0, fmt.Errorf("ask the local tier: %w", err)
	}
	if r.Err != nil {
		return r.Evicted, r.Freed, r.Err
	}
	n.log.Info("admin eviction", "target_bytes", target, "policy", policy, "evicted", r.Evicted, "freed_bytes", r.Freed)
	return r.Evicted, r.Freed, nil
}

// adminClear deletes every artifact of the local tier from the upstreams
// that are neither permanent nor read-only (one Delete per ref through the
// router, a few at a time), then empties the local tier in one step. A
// permanent upstream (S3 as the layer of record) keeps everything. The
// local tier is cleared even when some upstream deletes failed; the error
// then says how many.
func (n *Node) adminClear(ctx context.Context) error {
	bytes, objects := n.store.Usage()
	upstreamErr := n.clearUpstreams(ctx)
	res, err := actors.AskFor[*local.ClearResult](ctx, n.local, &local.Clear{})
	if err != nil {
		return fmt.Errorf("ask the local tier: %w", err)
	}
	if res.Err != nil {
		return res.Err
	}
	n.ops.events.Load().Cleared(objects, bytes)
	return upstreamErr
}

// clearParallelism bounds the deletes a clear has in flight: enough to
// hide a regional's round trip, few enough not to crowd out builds.
const clearParallelism = 8

// clearUpstreams deletes every locally held ref from the deletable
// upstreams (and locally, on the way).
func (n *Node) clearUpstreams(ctx context.Context) error {
	if !slices.ContainsFunc(n.cfg.Upstream, func(u config.UpstreamConfig) bool { return !u.Permanent && !u.ReadOnly }) {
		return nil
	}
	var refs []messages.Ref
	if err := n.store.Refs(func(r messages.Ref) bool { refs = append(refs, r); return true }); err != nil {
		return fmt.Errorf("list artifacts to delete upstream: %w", err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
		first  error
	)
	sem := make(chan struct{}, clearParallelism)
	for _, ref := range refs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := n.cache.DeleteEverywhere(ctx, ref); err != nil {
				mu.Lock()
				failed++
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed > 0 {
		n.log.Warn("clear: some artifacts could not be deleted from upstreams", "failed", failed, "of", len(refs), "err", first)
		return fmt.Errorf("%d of %d artifacts could not be deleted from upstreams: %w", failed, len(refs), first)
	}
	return nil
}

func (n *Node) adminConfig() (map[string]any, []string) {
	o := n.opsOf()
	o.mu.Lock()
	defer o.mu.Unlock()
	return ops.ConfigValues(&n.cfg), n.adminLiveKeys(o)
}

// adminLiveKeys are the keys the admin API changes: config.LiveKeys, less
// the log level when the node cannot change its logger.
func (n *Node) adminLiveKeys(o *opsParts) []string {
	keys := slices.Clone(config.LiveKeys)
	if o.setLogLevel == nil {
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == "observability.log_level" })
	}
	return keys
}

// adminUpdateConfig builds the next config from the running one and the
// requested changes, then applies it the way a SIGHUP reload does.
func (n *Node) adminUpdateConfig(_ context.Context, changes map[string]string) (map[string]any, error) {
	o := n.opsOf()
	o.mu.Lock()
	defer o.mu.Unlock()
	next, keys, err := ops.SetKeys(n.cfg, changes, n.adminLiveKeys(o))
	if err != nil {
		return nil, err
	}
	var level slog.Level
	if slices.Contains(keys, "observability.log_level") {
		if err := level.UnmarshalText([]byte(next.Observability.LogLevel)); err != nil {
			return nil, &ops.KeyError{Key: "observability.log_level", Reason: err.Error()}
		}
	}
	authChanged := slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, "auth.") })
	if authChanged {
		// The guards were built when the node started: turning auth on
		// or off here would leave some listeners open or locked, so only
		// a change of key source while auth stays on is taken.
		if !n.authn.Enabled() {
			return nil, &ops.KeyError{Key: keys[slices.IndexFunc(keys, func(k string) bool { return strings.HasPrefix(k, "auth.") })],
				Reason: "auth is off in this node; enabling it needs a restart"}
		}
		if next.Auth.PublicKeyFile == "" && next.Auth.PublicKeysDir == "" && next.Auth.JWKSURL == "" {
			return nil, &ops.KeyError{Key: "auth", Reason: "would leave no key source: auth cannot be turned off while the node runs"}
		}
		if err := n.authn.Reload(next.Auth); err != nil {
			return nil, &ops.KeyError{Key: "auth", Reason: err.Error()}
		}
		n.cfg.Auth = next.Auth
	}
	if err := n.Apply(next); err != nil {
		var ke *ops.KeyError
		if errors.As(err, &ke) {
			return nil, err
		}
		return nil, fmt.Errorf("apply config: %w", err)
	}
	if o.setLogLevel != nil && slices.Contains(keys, "observability.log_level") {
		o.setLogLevel(level)
	}
	values := ops.ConfigValues(&n.cfg)
	applied := map[string]any{}
	for _, k := range keys {
		applied[k] = values[k]
	}
	n.log.Info("config changed through the admin API", "keys", keys)
	return applied, nil
}
