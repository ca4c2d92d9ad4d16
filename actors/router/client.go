package router

import (
	"context"
	"fmt"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tenant"
)

// Cache is the adapters.Cache every adapter uses: each call is one Ask to
// the router actor. Staging needs no actor: it only creates a temp file.
// Every ref is first scoped to the tenant of the request's token
// (tenant.Scope), so no adapter can address another tenant's entries.
type Cache struct {
	router actors.Ref
	store  *store.Store
}

// NewCache returns the Cache for the router at ref over the node's store.
func NewCache(ref actors.Ref, st *store.Store) *Cache {
	return &Cache{router: ref, store: st}
}

func (c *Cache) Get(ctx context.Context, ref messages.Ref) (*messages.GetResult, error) {
	ref = tenant.Scope(ctx, ref)
	res, err := c.router.Ask(ctx, &messages.Get{Ref: ref})
	if err != nil {
		return &messages.GetResult{}, nil // a cache that cannot answer is a miss
	}
	r, ok := res.(*messages.GetResult)
	if !ok {
		return nil, fmt.Errorf("router answered Get with %T", res)
	}
	if r.Found && r.Body == nil {
		f, err := c.store.OpenLocated(r.Meta, r.Path)
		if err != nil {
			// Evicted between the lookup and the open: a miss.
			return &messages.GetResult{}, nil
		}
		r.Body = f
	}
	return r, nil
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
	res, err := c.router.Ask(ctx, m)
	if err != nil {
		return &messages.StatResult{}, nil
	}
	r, ok := res.(*messages.StatResult)
	if !ok {
		return nil, fmt.Errorf("router answered Stat with %T", res)
	}
	return r, nil
}

func (c *Cache) Stage(expectHash string, expectSize int64) (*store.Staged, error) {
	return c.store.Stager().New(expectHash, expectSize)
}

func (c *Cache) Put(ctx context.Context, ref messages.Ref, meta messages.Meta, blob *store.Staged) error {
	ref = tenant.Scope(ctx, ref)
	res, err := c.router.Ask(ctx, &messages.Put{Ref: ref, Meta: meta, Blob: blob})
	if err != nil {
		blob.Discard()
		return fmt.Errorf("store %s: %w", ref, err)
	}
	r, ok := res.(*messages.PutResult)
	if !ok {
		return fmt.Errorf("router answered Put with %T", res)
	}
	return r.Err
}

func (c *Cache) Delete(ctx context.Context, ref messages.Ref) error {
	ref = tenant.Scope(ctx, ref)
	res, err := c.router.Ask(ctx, &messages.Delete{Ref: ref})
	if err != nil {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	if r, ok := res.(*messages.DeleteResult); ok {
		return r.Err
	}
	return nil
}

var _ adapters.Cache = (*Cache)(nil)

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
	_ adapters.Lister   = (*Cache)(nil)
	_ adapters.TierStat = (*Cache)(nil)
)
