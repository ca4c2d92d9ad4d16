// Package cachetest gives adapter and tier tests a real adapters.Cache: a
// real store (Badger and blob files in a temporary directory) behind the
// real local tier actor and router actor, the same read and write path a
// node uses, without the listeners. (It cannot build a whole node: the node
// imports the adapters whose tests use this package.)
package cachetest

import (
	"path/filepath"
	"testing"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/actors/router"
	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/store"
)

// Options tune the cache under test.
type Options struct {
	// MaxSize bounds the store (default 1 GiB).
	MaxSize int64
}

// New returns an empty cache that lives as long as the test.
func New(t testing.TB) adapters.Cache {
	c, _ := NewWithStore(t, Options{})
	return c
}

// NewWithStore also returns the store, for tests that inspect it.
func NewWithStore(t testing.TB, opts Options) (adapters.Cache, *store.Store) {
	t.Helper()
	if opts.MaxSize <= 0 {
		opts.MaxSize = 1 << 30
	}
	// The hot tier is on, as in a node (cache.hot_size defaults to 64MB),
	// so adapter tests read small blobs through its body and key caches.
	st, err := store.Open(store.Options{Dir: filepath.Join(t.TempDir(), "cache"), MaxSize: opts.MaxSize, Policy: "lru", HotSize: 1 << 20})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	sys := actors.NewSystem()
	lt, err := sys.Spawn("local", local.New(st, 0, 0, nil))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := sys.Spawn("router", router.New(router.Options{Local: lt, Stager: st.Stager()}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sys.Stop(rt)
		sys.Stop(lt)
		sys.Shutdown()
		st.Close()
	})
	return router.NewCache(rt, st), st
}
