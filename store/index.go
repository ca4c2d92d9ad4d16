package store

import (
	"fmt"
	"slices"

	"github.com/tuist/fabrik-node/tier"
)

// Eviction policies.
const (
	PolicyLRU = "lru" // least recently accessed first
	PolicyLFU = "lfu" // fewest accesses first, least recently accessed among equals
	PolicyTTL = "ttl" // oldest created first
)

func validPolicy(p string) error {
	switch p {
	case PolicyLRU, PolicyLFU, PolicyTTL:
		return nil
	}
	return fmt.Errorf("%w: eviction policy %q (want lru, lfu or ttl)", tier.ErrInvalid, p)
}

// memEntry is what eviction needs to know about one blob. It is kept by
// value in the map (about 100 bytes per blob with the map's own overhead) so
// a million blobs cost ~100 MB at most and no pointers for the GC to chase.
type memEntry struct {
	size        int64
	created     int64 // unix nanoseconds
	lastAccess  int64
	accessCount uint64
	cas         bool
	inline      bool // the body lives in the index (d/), not in a file
	dirty       bool // access stats changed since they were last written to Badger
	// bs is the blob's build system as an index into memIndex.names, so the
	// operations API can list and group blobs from memory alone.
	bs uint8
}

// memIndex is the in-memory eviction index. The owner holds Store.mu.
type memIndex struct {
	blobs map[hashKey]memEntry
	// pinned counts, per blob, the write-through jobs still owed to an
	// upstream (Store.Pin): eviction skips them, so an acknowledged artifact
	// is never evicted from the only tier that holds it.
	pinned map[hashKey]int
	used   int64
	dirty  int // entries with dirty set
	// names interns build system labels (a handful in practice: gradle,
	// bazel, nx, ...); past 255 distinct labels the rest share "other".
	names []string
	ids   map[string]uint8
}

func newMemIndex() *memIndex {
	return &memIndex{blobs: make(map[hashKey]memEntry), pinned: map[hashKey]int{}, names: []string{""}, ids: map[string]uint8{"": 0}}
}

// intern returns the id of a build system label.
func (m *memIndex) intern(name string) uint8 {
	if id, ok := m.ids[name]; ok {
		return id
	}
	if len(m.names) == 255 {
		name = "other"
		if id, ok := m.ids[name]; ok {
			return id
		}
	}
	id := uint8(len(m.names))
	m.names = append(m.names, name)
	m.ids[name] = id
	return id
}

func (m *memIndex) put(h hashKey, e memEntry) {
	if old, ok := m.blobs[h]; ok {
		m.used -= old.size
		if old.dirty {
			m.dirty--
		}
	}
	m.blobs[h] = e
	m.used += e.size
	if e.dirty {
		m.dirty++
	}
}

func (m *memIndex) remove(h hashKey) (memEntry, bool) {
	e, ok := m.blobs[h]
	if !ok {
		return e, false
	}
	delete(m.blobs, h)
	m.used -= e.size
	if e.dirty {
		m.dirty--
	}
	return e, true
}

func (m *memIndex) touch(h hashKey, now int64) (memEntry, bool) {
	e, ok := m.blobs[h]
	if !ok {
		return e, false
	}
	e.lastAccess = now
	e.accessCount++
	if !e.dirty {
		e.dirty = true
		m.dirty++
	}
	m.blobs[h] = e
	return e, true
}

type victim struct {
	hash hashKey
	size int64
}

// victims returns blobs in eviction order until at least need bytes are
// covered. Eviction runs only when the store crosses MaxSize and then frees
// ~10% of it, so a full sort per run (O(n log n), ~50 ms for a million
// entries) is cheaper overall than keeping one ordered structure per policy,
// and lets the policy change at runtime without rebuilding anything.
func (m *memIndex) victims(policy string, need int64) []victim {
	if need <= 0 {
		return nil
	}
	type cand struct {
		victim
		a, b int64
	}
	all := make([]cand, 0, len(m.blobs))
	for h, e := range m.blobs {
		if m.pinned[h] > 0 {
			continue
		}
		c := cand{victim: victim{h, e.size}}
		switch policy {
		case PolicyLFU:
			c.a, c.b = int64(min(e.accessCount, 1<<62)), e.lastAccess
		case PolicyTTL:
			c.a, c.b = e.created, e.lastAccess
		default:
			c.a, c.b = e.lastAccess, e.created
		}
		all = append(all, c)
	}
	slices.SortFunc(all, func(x, y cand) int {
		switch {
		case x.a != y.a:
			return cmpInt(x.a, y.a)
		case x.b != y.b:
			return cmpInt(x.b, y.b)
		}
		return slices.Compare(x.hash[:], y.hash[:]) // deterministic among exact ties
	})
	var out []victim
	for _, c := range all {
		if need <= 0 {
			break
		}
		out = append(out, c.victim)
		need -= c.size
	}
	return out
}

func cmpInt(a, b int64) int {
	if a < b {
		return -1
	}
	return 1
}
