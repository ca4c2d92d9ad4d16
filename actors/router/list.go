package router

import (
	"context"

	"github.com/tuist/fabrik-node/adapters"
)

// List lists a namespace's keys in the local store. It needs no actor: the
// store's key index is safe for concurrent reads, and a listing must not
// queue behind the router's reads and writes.
func (c *Cache) List(ctx context.Context, namespace, prefix, after string, limit int) ([]adapters.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	keys, err := c.store.Keys(namespace, prefix, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]adapters.Entry, len(keys))
	for i, k := range keys {
		out[i] = adapters.Entry{Key: k.Key, Meta: k.Meta}
	}
	return out, nil
}

var _ adapters.Lister = (*Cache)(nil)
