package store

import (
	"maps"
	"sync"
)

// keyCache remembers what the keys of small, recently read blobs resolve
// to (their k/ entry), so a hot read by key (a Gradle, Nx or Turborepo hit)
// costs a map lookup instead of a Badger read transaction: with the body in
// the hot tier, that transaction was the largest cost of a 4 KiB GET left
// in the store (a tenth of the node's CPU, counting the watermark
// goroutine every Badger transaction wakes).
//
// Consistency. The cache is filled only by readers, from what Badger
// answered, and every change to a key's entry (commit, Delete, Clear) calls
// forget after its transaction commits and before it returns, under wmu.
// forget also advances a generation, and a reader inserts what it read only
// if the generation has not moved since before its Badger read, so a value
// read before a commit can never be inserted after that commit's forget.
// Keys that go with their blob (eviction, a broken blob dropped) are not
// forgotten one by one: a cached entry names its blob and the blob's
// creation time, and is used only while the in-memory index holds that very
// blob (same hash, same creation); a blob evicted, or evicted and stored
// again, is a miss here and the reader asks Badger.
type keyCache struct {
	mu  sync.RWMutex
	gen uint64 // advanced by every forget and clear
	max int
	m   map[string]cachedKey
}

// cachedKey is one key's resolution: its k/ value and the creation time of
// the blob it named when cached (memEntry.created).
type cachedKey struct {
	kv      keyValue
	created int64
}

// hotKeyBytes is the hot tier's bytes per cached key: the cache holds up to
// one key per 4 KiB of the hot tier's bound (as many as the tier holds
// 4 KiB bodies), about 220 bytes each.
const hotKeyBytes = 4 << 10

// newKeyCache returns a cache of at most max keys (nil when max <= 0; a nil
// cache caches nothing).
func newKeyCache(max int) *keyCache {
	if max <= 0 {
		return nil
	}
	return &keyCache{max: max, m: make(map[string]cachedKey)}
}

// get returns name's cached resolution. The attrs map is the caller's own.
func (c *keyCache) get(name []byte) (cachedKey, bool) {
	if c == nil {
		return cachedKey{}, false
	}
	c.mu.RLock()
	v, ok := c.m[string(name)]
	c.mu.RUnlock()
	if ok && len(v.kv.attrs) > 0 {
		v.kv.attrs = maps.Clone(v.kv.attrs)
	}
	return v, ok
}

// generation is read before a Badger read whose result may be inserted.
func (c *keyCache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put caches name's resolution read from Badger, unless a key changed since
// gen was read (the value may predate that change). A full cache drops an
// arbitrary entry (map iteration order is random).
func (c *keyCache) put(name []byte, gen uint64, v cachedKey) {
	if c == nil {
		return
	}
	if len(v.kv.attrs) > 0 {
		v.kv.attrs = maps.Clone(v.kv.attrs)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.m[string(name)]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[string(name)] = v
}

// drop removes an entry a reader found stale (its blob is gone or is a new
// incarnation). Badger did not change, so the generation stays.
func (c *keyCache) drop(name []byte, v cachedKey) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if cur, ok := c.m[string(name)]; ok && cur.kv.hash == v.kv.hash && cur.created == v.created {
		delete(c.m, string(name))
	}
	c.mu.Unlock()
}

// forget is called by every writer of a key's k/ entry once its
// transaction has committed.
func (c *keyCache) forget(name []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.m, string(name))
	c.gen++
	c.mu.Unlock()
}

// clear forgets every key (Clear).
func (c *keyCache) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	clear(c.m)
	c.gen++
	c.mu.Unlock()
}

// len is the number of cached keys (tests).
func (c *keyCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
