// Package cachetest gives adapter tests a real adapters.Cache on a temporary
// directory, so protocol tests exercise real staging, hashing and disk I/O.
//
// Temporary: until the node package can build a whole node in-process, the
// cache below stores committed blobs as plain files. New keeps its signature
// when it switches to node.New, so adapter tests need no change.
package cachetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier"
)

// New returns an empty cache that lives as long as the test.
func New(t testing.TB) adapters.Cache {
	dir := t.TempDir()
	st, err := store.NewStager(filepath.Join(dir, "tmp"), false)
	if err != nil {
		t.Fatal(err)
	}
	return &fileCache{dir: dir, stager: st}
}

type fileCache struct {
	mu     sync.Mutex
	dir    string
	stager *store.Stager
}

func (c *fileCache) path(ref messages.Ref) string {
	return filepath.Join(c.dir, "blobs", strings.ReplaceAll(ref.String(), "/", "_"))
}

func (c *fileCache) Get(_ context.Context, ref messages.Ref) (*messages.GetResult, error) {
	meta, err := c.meta(ref)
	if err != nil {
		return &messages.GetResult{}, nil
	}
	f, err := os.Open(c.path(ref))
	if err != nil {
		return &messages.GetResult{}, nil
	}
	return &messages.GetResult{Found: true, Meta: meta, Body: f, Tier: "local"}, nil
}

func (c *fileCache) meta(ref messages.Ref) (messages.Meta, error) {
	var m messages.Meta
	b, err := os.ReadFile(c.path(ref) + ".meta")
	if err != nil {
		return m, tier.ErrNotFound
	}
	return m, json.Unmarshal(b, &m)
}

func (c *fileCache) Stat(_ context.Context, ref messages.Ref) (*messages.StatResult, error) {
	meta, err := c.meta(ref)
	if err != nil {
		return &messages.StatResult{}, nil
	}
	return &messages.StatResult{Found: true, Meta: meta, Tier: "local"}, nil
}

func (c *fileCache) Stage(expectHash string, expectSize int64) (*store.Staged, error) {
	return c.stager.New(expectHash, expectSize)
}

func (c *fileCache) Put(_ context.Context, ref messages.Ref, meta messages.Meta, blob *store.Staged) error {
	defer blob.Discard()
	if ref.IsCAS() && ref.Key != blob.Hash() {
		return fmt.Errorf("%w: CAS key %s does not match content hash %s", tier.ErrInvalid, ref.Key, blob.Hash())
	}
	meta.Hash, meta.Size = blob.Hash(), blob.Size()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.MkdirAll(filepath.Join(c.dir, "blobs"), 0o755); err != nil {
		return err
	}
	if err := os.Rename(blob.Path(), c.path(ref)); err != nil {
		return err
	}
	b, _ := json.Marshal(meta)
	return os.WriteFile(c.path(ref)+".meta", b, 0o644)
}

func (c *fileCache) Delete(_ context.Context, ref messages.Ref) error {
	os.Remove(c.path(ref))
	os.Remove(c.path(ref) + ".meta")
	return nil
}
