package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tenant"
	"github.com/tuist/fabrik-node/tier"
)

// Cache is the adapters.Cache every adapter uses: each call is one Ask to
// the router actor, except a Get the local store answers (see Get) and the
// local part of StatMany.
// Staging needs no actor: it only creates a temp file.
// Every ref is first scoped to the tenant of the request's token
// (tenant.Scope), so no adapter can address another tenant's entries.
type Cache struct {
	router actors.Ref
	store  *store.Store
	// upstreams caches the router's answer to messages.Upstreams
	// (upstreamsUnknown until asked; see readableUpstreams).
	upstreams atomic.Int32
}

// NewCache returns the Cache for the router at ref over the node's store.
func NewCache(ref actors.Ref, st *store.Store) *Cache {
	return &Cache{router: ref, store: st}
}

func (c *Cache) Get(ctx context.Context, ref messages.Ref) (*messages.GetResult, error) {
	return c.get(ctx, &messages.Get{Ref: tenant.Scope(ctx, ref)})
}

func (c *Cache) get(ctx context.Context, m *messages.Get) (*messages.GetResult, error) {
	// A local hit needs no actor: the store's lookup is safe from any
	// goroutine (it counts the access under its own lock), and the router
	// would only answer it as the local tier did. A clean miss goes to the
	// router marked LocalMissed, so it asks the peers and upstreams without
	// asking the local tier again (one ask less per miss); a LocalOnly one
	// is answered here. Anything else (a broken entry, a file evicted since
	// the lookup, a store error) goes to the router as a plain Get, which
	// asks the local tier again and then the peers and upstreams.
	meta, path, err := c.store.Locate(m.Ref)
	if err == nil {
		if f, err := c.store.OpenBody(meta, path); err == nil {
			return &messages.GetResult{Found: true, Meta: meta, Path: path, Body: f, Tier: local.Name}, nil
		}
	}
	if errors.Is(err, tier.ErrNotFound) {
		if m.LocalOnly {
			return &messages.GetResult{}, nil
		}
		m.LocalMissed = true
	}
	r, err := actors.AskFor[*messages.GetResult](ctx, c.router, m)
	if err != nil {
		return &messages.GetResult{}, nil // a cache that cannot answer is a miss
	}
	if r.Found && r.Body == nil {
		f, err := c.store.OpenBody(r.Meta, r.Path)
		if err != nil {
			// Evicted between the lookup and the open: a miss.
			return &messages.GetResult{}, nil
		}
		r.Body = f
	}
	return r, nil
}

// GetLocal reads the local tier only, the ref taken as it stands (no
// tenant scoping: its caller, the P2P server, receives refs a peer's router
// already scoped). A peer must never cause an upstream read here.
func (c *Cache) GetLocal(ctx context.Context, ref messages.Ref) (*messages.GetResult, error) {
	return c.get(ctx, &messages.Get{Ref: ref, LocalOnly: true})
}

func (c *Cache) Stat(ctx context.Context, ref messages.Ref) (*messages.StatResult, error) {
	return c.stat(ctx, &messages.Stat{Ref: ref})
}

// StatLocal asks the local tier only (adapters.TierStat).
func (c *Cache) StatLocal(ctx context.Context, ref messages.Ref) (*messages.StatResult, error) {
	return c.stat(ctx, &messages.Stat{Ref: ref, LocalOnly: true})
}

// StatUpstream asks the upstreams only (adapters.TierStat).
func (c *Cache) StatUpstream(ctx context.Context, ref messages.Ref) (*messages.StatResult, error) {
	return c.stat(ctx, &messages.Stat{Ref: ref, UpstreamOnly: true})
}

func (c *Cache) stat(ctx context.Context, m *messages.Stat) (*messages.StatResult, error) {
	m.Ref = tenant.Scope(ctx, m.Ref)
	r, err := actors.AskFor[*messages.StatResult](ctx, c.router, m)
	if err != nil {
		return &messages.StatResult{}, nil
	}
	return r, nil
}

// upstreamStatConcurrency bounds the upstream checks of one StatMany's
// local misses: enough to hide an upstream round trip, few enough that one
// call of thousands of refs cannot flood the router.
const upstreamStatConcurrency = 16

// StatMany checks many refs (adapters.BatchStat): sizes[i] is the size of
// what refs[i] names, -1 when no tier has it. The local tier answers in
// the caller's goroutine, in one pass over the store's index
// (store.StatMany, which counts each hit as an access like Stat): no actor
// is asked, as for Get's local hits. Only the local misses go further, and
// only when the router has an upstream that serves reads: each is one
// Stat with UpstreamOnly through the router, at most
// upstreamStatConcurrency at a time, so the router's mailbox never waits
// on a network round trip. Every ref is scoped to the request's tenant
// like every other call.
func (c *Cache) StatMany(ctx context.Context, refs []messages.Ref) ([]int64, error) {
	scoped := tenant.ScopeAll(ctx, refs)
	// A local failure leaves its refs missing, as a failed Stat does: the
	// upstreams may still know them.
	sizes, _ := c.store.StatMany(scoped)
	var misses []int
	for i, size := range sizes {
		if size < 0 {
			misses = append(misses, i)
		}
	}
	if len(misses) == 0 || !c.readableUpstreams(ctx) {
		return sizes, nil
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, upstreamStatConcurrency)
	for _, i := range misses {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			// scoped already: stat must not scope twice.
			res, err := actors.AskFor[*messages.StatResult](ctx, c.router, &messages.Stat{Ref: scoped[i], UpstreamOnly: true})
			if err == nil && res.Found {
				sizes[i] = res.Meta.Size
			}
		}()
	}
	wg.Wait()
	return sizes, ctx.Err()
}

// readableUpstreams reports whether the router has an upstream that serves
// reads. The router's tiers are fixed for its life, so its answer is asked
// once and kept; a router that cannot answer is asked again next time, and
// meanwhile there is nothing to ask further (a miss).
func (c *Cache) readableUpstreams(ctx context.Context) bool {
	switch c.upstreams.Load() {
	case upstreamsNone:
		return false
	case upstreamsSome:
		return true
	}
	r, err := actors.AskFor[*messages.UpstreamsResult](ctx, c.router, &messages.Upstreams{})
	if err != nil || r.Err != nil {
		return false
	}
	if r.Readable {
		c.upstreams.Store(upstreamsSome)
	} else {
		c.upstreams.Store(upstreamsNone)
	}
	return r.Readable
}

// Values of Cache.upstreams.
const (
	upstreamsUnknown int32 = iota
	upstreamsNone
	upstreamsSome
)

func (c *Cache) Stage(expectHash string, expectSize int64) (*store.Staged, error) {
	return c.store.Stager().New(expectHash, expectSize)
}

func (c *Cache) Put(ctx context.Context, ref messages.Ref, meta messages.Meta, blob *store.Staged) error {
	ref = tenant.Scope(ctx, ref)
	r, err := actors.AskFor[*local.PutResult](ctx, c.router, &local.Put{Ref: ref, Meta: meta, Blob: blob})
	if err != nil {
		blob.Discard()
		return fmt.Errorf("store %s: %w", ref, err)
	}
	return r.Err
}

// Delete removes ref from the local tier only (what a build tool or an
// edge deleting from its regional asks for). DeleteEverywhere also reaches
// the upstreams.
func (c *Cache) Delete(ctx context.Context, ref messages.Ref) error {
	_, err := c.delete(ctx, &messages.Delete{Ref: ref})
	return err
}

// DeleteEverywhere removes ref from the local tier and from every upstream
// that is neither read-only nor permanent (the admin API's delete and
// clear). found says whether the local tier had it.
func (c *Cache) DeleteEverywhere(ctx context.Context, ref messages.Ref) (found bool, err error) {
	return c.delete(ctx, &messages.Delete{Ref: ref, Upstreams: true})
}

func (c *Cache) delete(ctx context.Context, m *messages.Delete) (bool, error) {
	m.Ref = tenant.Scope(ctx, m.Ref)
	r, err := actors.AskFor[*messages.DeleteResult](ctx, c.router, m)
	if err == nil {
		err = r.Err
	}
	if err != nil {
		return false, fmt.Errorf("delete %s: %w", m.Ref, err)
	}
	return r.Found, nil
}

// List enumerates a namespace in the local store. It reads the store
// directly, like Get's open: a read-only scan needs no ordering with the
// actors' writes, and must not queue behind them in a mailbox.
func (c *Cache) List(ctx context.Context, namespace, prefix, after string, fn func(key string, meta messages.Meta) bool) error {
	namespace = tenant.Scope(ctx, messages.Ref{Namespace: namespace}).Namespace
	return c.store.Keys(namespace, prefix, after, func(key string, meta messages.Meta) bool {
		return ctx.Err() == nil && fn(key, meta)
	})
}

var (
	_ adapters.Cache     = (*Cache)(nil)
	_ adapters.Lister    = (*Cache)(nil)
	_ adapters.TierStat  = (*Cache)(nil)
	_ adapters.BatchStat = (*Cache)(nil)
)
