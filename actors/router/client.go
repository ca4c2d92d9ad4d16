package router

import (
	"context"
	"fmt"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

// Cache is the adapters.Cache every adapter uses: each call is one Ask to
// the router actor. Staging needs no actor: it only creates a temp file.
type Cache struct {
	router actors.Ref
	store  *store.Store
}

// NewCache returns the Cache for the router at ref over the node's store.
func NewCache(ref actors.Ref, st *store.Store) *Cache {
	return &Cache{router: ref, store: st}
}

func (c *Cache) Get(ctx context.Context, ref messages.Ref) (*messages.GetResult, error) {
	r, err := actors.AskFor[*messages.GetResult](ctx, c.router, &messages.Get{Ref: ref})
	if err != nil {
		return &messages.GetResult{}, nil // a cache that cannot answer is a miss
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
	r, err := actors.AskFor[*messages.StatResult](ctx, c.router, &messages.Stat{Ref: ref})
	if err != nil {
		return &messages.StatResult{}, nil
	}
	return r, nil
}

func (c *Cache) Stage(expectHash string, expectSize int64) (*store.Staged, error) {
	return c.store.Stager().New(expectHash, expectSize)
}

func (c *Cache) Put(ctx context.Context, ref messages.Ref, meta messages.Meta, blob *store.Staged) error {
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
	r, err := actors.AskFor[*messages.DeleteResult](ctx, c.router, m)
	if err == nil {
		err = r.Err
	}
	if err != nil {
		return false, fmt.Errorf("delete %s: %w", m.Ref, err)
	}
	return r.Found, nil
}

var _ adapters.Cache = (*Cache)(nil)
