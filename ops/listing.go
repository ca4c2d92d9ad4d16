package ops

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tuist/fabrik-node/messages"
)

// Index is the part of the local store the query API reads. Blobs streams
// every blob's metadata a page at a time; the API never holds more than the
// page it answers (plus the entries ranked ahead of it).
type Index interface {
	Blobs(fn func(messages.Meta) bool) error
	BlobMeta(hash string) (messages.Meta, error)
	Usage() (bytes int64, objects int64)
	// Referenced reports whether a key in a namespace starting with
	// nsPrefix reaches the blob (a tenant's view of shared blobs).
	Referenced(hash, nsPrefix string) (bool, error)
}

// Sort orders of the artifact listing.
const (
	SortSizeDesc     = "size_desc"
	SortSizeAsc      = "size_asc"
	SortAccessedDesc = "accessed_desc"
	SortCreatedDesc  = "created_desc"
	SortCountDesc    = "count_desc"
)

// before reports whether a ranks ahead of b in a sort order. Ties fall back
// to the hash so that pages are stable across requests.
type before func(a, b *messages.Meta) bool

func orderFor(sort string) (before, error) {
	var key func(a, b *messages.Meta) int
	switch sort {
	case SortSizeDesc:
		key = func(a, b *messages.Meta) int { return cmp64(b.Size, a.Size) }
	case SortSizeAsc:
		key = func(a, b *messages.Meta) int { return cmp64(a.Size, b.Size) }
	case SortAccessedDesc:
		key = func(a, b *messages.Meta) int { return cmp64(b.LastAccess.UnixNano(), a.LastAccess.UnixNano()) }
	case SortCreatedDesc:
		key = func(a, b *messages.Meta) int { return cmp64(b.CreatedAt.UnixNano(), a.CreatedAt.UnixNano()) }
	case SortCountDesc:
		key = func(a, b *messages.Meta) int {
			return cmp64(int64(min(b.AccessCount, 1<<62)), int64(min(a.AccessCount, 1<<62)))
		}
	default:
		return nil, fmt.Errorf("sort %q is not one of size_desc, size_asc, accessed_desc, created_desc, count_desc", sort)
	}
	return func(a, b *messages.Meta) bool {
		if c := key(a, b); c != 0 {
			return c < 0
		}
		return a.Hash < b.Hash
	}, nil
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// filter selects artifacts for /api/v1/artifacts/search; the zero filter
// matches everything.
type filter struct {
	query       string // lower-case substring of the hash or the build system
	buildSystem string
	hashPrefix  string // lower-case hex the hash starts with
	minSize     int64
	maxSize     int64 // 0: no bound
	// within keeps only blobs some key under this namespace prefix reaches
	// (a tenant token's view); "" keeps everything.
	within string
	idx    Index
}

func (f filter) match(m *messages.Meta) bool {
	if m.Size < f.minSize || (f.maxSize > 0 && m.Size > f.maxSize) {
		return false
	}
	if f.within != "" {
		if ok, err := f.idx.Referenced(m.Hash, f.within); err != nil || !ok {
			return false
		}
	}
	if f.buildSystem != "" && !strings.EqualFold(buildSystemName(m.BuildSystem), f.buildSystem) {
		return false
	}
	if f.hashPrefix != "" && !strings.HasPrefix(m.Hash, f.hashPrefix) {
		return false
	}
	if f.query != "" && !strings.Contains(m.Hash, f.query) && !strings.Contains(strings.ToLower(m.BuildSystem), f.query) {
		return false
	}
	return true
}

// rank scans the index once and returns the first k entries in order and
// the number of entries that matched. The scan itself is the store's
// in-memory index (no disk I/O); ranking sorts pointers, never the
// 120-byte entries, with a partial selection when k is small.
func rank(idx Index, order before, k int, f filter) ([]messages.Meta, int, error) {
	var all []messages.Meta
	err := idx.Blobs(func(m messages.Meta) bool {
		if f.match(&m) {
			all = append(all, m)
		}
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	k = min(max(k, 0), len(all))
	ptrs := make([]*messages.Meta, len(all))
	for i := range all {
		ptrs[i] = &all[i]
	}
	cmp := func(a, b *messages.Meta) int {
		switch {
		case order(a, b):
			return -1
		case order(b, a):
			return 1
		}
		return 0
	}
	if k < len(ptrs)/8 {
		selectFirst(ptrs, k, order)
		ptrs = ptrs[:k]
	}
	slices.SortFunc(ptrs, cmp)
	out := make([]messages.Meta, k)
	for i := range out {
		out[i] = *ptrs[i]
	}
	return out, len(all), nil
}

// selectFirst moves the k entries that rank first to ptrs[:k] (unordered)
// with a bounded max-heap: one comparison per entry that does not qualify.
func selectFirst(ptrs []*messages.Meta, k int, order before) {
	if k == 0 {
		return
	}
	h := ptrs[:k]
	// worse reports whether a ranks after b: the heap keeps the worst on top.
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= k {
				return
			}
			w := l
			if r := l + 1; r < k && order(h[l], h[r]) {
				w = r
			}
			if !order(h[i], h[w]) {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, p := range ptrs[k:] {
		if order(p, h[0]) {
			h[0] = p
			down(0)
		}
	}
}

// snapshotTTL is how long a ranked listing is served as it is. Past it the
// listing is still served (a cache explorer does not need second-exact
// rankings) while one background scan replaces it, so requests wait for a
// scan only when no snapshot covers the page they ask for.
const snapshotTTL = 3 * time.Second

// minSnapshot is the smallest prefix ranked per scan: the first ten pages of
// 100 come from one scan.
const minSnapshot = 1024

// snapshot is a ranked prefix of the listing in one sort order.
type snapshot struct {
	at    time.Time
	items []messages.Meta // the first len(items) entries in order (all of them when complete)
	total int
}

func (s *snapshot) covers(need int) bool { return len(s.items) >= need || len(s.items) == s.total }

// rankings caches one snapshot per sort order. Each order has its own lock,
// held during a foreground scan, so concurrent requests for the same order
// wait for one scan instead of starting their own.
type rankings struct {
	idx Index
	now func() time.Time

	mu     sync.Mutex
	orders map[string]*orderCache
	gen    int // bumped by invalidate: a background scan started before it is discarded
}

type orderCache struct {
	mu         sync.Mutex
	snap       *snapshot
	refreshing bool
}

func newRankings(idx Index, now func() time.Time) *rankings {
	return &rankings{idx: idx, now: now, orders: map[string]*orderCache{}}
}

// page returns entries [offset, offset+limit) in the given order and the
// total number of artifacts.
func (r *rankings) page(sort string, order before, offset, limit int) ([]messages.Meta, int, error) {
	r.mu.Lock()
	oc, ok := r.orders[sort]
	if !ok {
		oc = &orderCache{}
		r.orders[sort] = oc
	}
	gen := r.gen
	r.mu.Unlock()

	need := offset + limit
	oc.mu.Lock()
	defer oc.mu.Unlock()
	s := oc.snap
	switch {
	case s == nil || !s.covers(need):
		// Rank to the next power of two so that paging forward reuses
		// the scan for a while.
		k := minSnapshot
		for k < need {
			k *= 2
		}
		items, total, err := rank(r.idx, order, k, filter{})
		if err != nil {
			return nil, 0, err
		}
		s = &snapshot{at: r.now(), items: items, total: total}
		oc.snap = s
	case r.now().Sub(s.at) > snapshotTTL && !oc.refreshing:
		oc.refreshing = true
		go r.refresh(oc, gen, order, max(len(s.items), minSnapshot))
	}
	if offset >= len(s.items) {
		return nil, s.total, nil
	}
	return s.items[offset:min(need, len(s.items))], s.total, nil
}

// refresh replaces a stale snapshot in the background. A failed scan (the
// store closing under it) keeps the old one.
func (r *rankings) refresh(oc *orderCache, gen int, order before, k int) {
	items, total, err := rank(r.idx, order, k, filter{})
	r.mu.Lock()
	current := r.gen == gen
	r.mu.Unlock()
	oc.mu.Lock()
	defer oc.mu.Unlock()
	oc.refreshing = false
	if err == nil && current {
		oc.snap = &snapshot{at: r.now(), items: items, total: total}
	}
}

// invalidate drops every snapshot (after an admin eviction or clear, whose
// caller expects to see the result at once).
func (r *rankings) invalidate() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	r.orders = map[string]*orderCache{}
}
