package store

import (
	"bytes"
	"fmt"
	"io"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/tuist/fabrik-node/messages"
)

// The hot tier keeps the bodies of small blobs in memory, so the hottest
// read (a 4 KiB Gradle or Bazel artifact that every build fetches) costs no
// open, fstat, read and close. It is a read cache of the blob files only:
// writes never wait on it, so crash safety is the files' and the index's.
//
// Admission is ristretto's TinyLFU: once the tier is full, a new blob
// enters only if it is read more often than what it would displace. Build
// traffic reads the same small outputs on every build, while a cold CI
// restore reads thousands once; frequency admission keeps the first and
// does not let the second flush them.
//
// Consistency: the tier is keyed by content hash, and consulted only after
// the index has located the blob (Locate), so it never answers for a blob
// the store no longer holds. Entries also leave the tier with their blob
// (removeBlobs, Clear) so memory follows the store: a Set happens under mu
// only while the index holds the blob, and removal deletes from the tier
// under mu right after the index, so no Set can follow a removal.

// DefaultHotMaxObject is the largest blob the hot tier keeps.
const DefaultHotMaxObject = 64 << 10

// hotTier is the bounded in-memory body cache; nil when disabled. It also
// keeps the key resolutions of small blobs (keyCache), so that a hot read
// by key touches neither the disk nor Badger.
type hotTier struct {
	c         *ristretto.Cache[string, []byte]
	maxObject int64
	keys      *keyCache
}

func newHotTier(size, maxObject int64) (*hotTier, error) {
	if size <= 0 {
		return nil, nil
	}
	if maxObject <= 0 {
		maxObject = DefaultHotMaxObject
	}
	// ristretto wants ~10 counters per expected entry; entries average a
	// few KiB in build traffic.
	counters := max(size/1024*10, 1000)
	c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: counters,
		MaxCost:     size,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("store: hot tier: %w", err)
	}
	return &hotTier{c: c, maxObject: maxObject, keys: newKeyCache(int(max(size/hotKeyBytes, 1)))}, nil
}

// hotKeys is the key cache of the hot tier (nil, which caches nothing,
// when the tier is off).
func (s *Store) hotKeys() *keyCache {
	if s.hot == nil {
		return nil
	}
	return s.hot.keys
}

// hotBody is an in-memory blob body.
type hotBody struct{ *bytes.Reader }

func (hotBody) Close() error { return nil }

// OpenBody opens a blob found by Locate (path "" for an inline blob),
// serving small blobs from the hot tier when it holds them and admitting
// them when not. The body is an *os.File for file blobs the hot tier does
// not keep.
func (s *Store) OpenBody(meta messages.Meta, path string) (io.ReadCloser, error) {
	hot := s.hot
	if hot == nil || meta.Size > hot.maxObject {
		if path == "" {
			b, err := s.readInline(meta)
			if err != nil {
				return nil, err
			}
			return hotBody{bytes.NewReader(b)}, nil
		}
		return s.OpenLocated(meta, path)
	}
	if b, ok := hot.c.Get(meta.Hash); ok && int64(len(b)) == meta.Size {
		return hotBody{bytes.NewReader(b)}, nil
	}
	var b []byte
	if path == "" {
		var err error
		if b, err = s.readInline(meta); err != nil {
			return nil, err
		}
	} else {
		f, err := s.OpenLocated(meta, path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b = make([]byte, meta.Size)
		if _, err := io.ReadFull(f, b); err != nil {
			return nil, fmt.Errorf("store: read blob %s: %w", meta.Hash, err)
		}
	}
	if h, err := parseHash(meta.Hash); err == nil {
		s.mu.Lock()
		if _, ok := s.idx.blobs[h]; ok {
			hot.c.Set(meta.Hash, b, int64(len(b))+hotEntryOverhead)
		}
		s.mu.Unlock()
	}
	return hotBody{bytes.NewReader(b)}, nil
}

// hotEntryOverhead is the bookkeeping counted per entry besides its bytes,
// so that many tiny blobs cannot exceed the bound.
const hotEntryOverhead = 128

// hotDrop removes hashes from the hot tier; the caller holds mu.
func (s *Store) hotDrop(h hashKey) {
	if s.hot != nil {
		s.hot.c.Del(h.String())
	}
}

// hotClear empties the hot tier, bodies and keys; the caller holds mu.
func (s *Store) hotClear() {
	if s.hot != nil {
		s.hot.c.Clear()
		s.hot.keys.clear()
	}
}

// hotClose releases the hot tier's goroutines.
func (s *Store) hotClose() {
	if s.hot != nil {
		s.hot.c.Close()
	}
}

// HotCached reports whether the hot tier holds hash (tests).
func (s *Store) HotCached(hash string) bool {
	if s.hot == nil {
		return false
	}
	s.hot.c.Wait()
	_, ok := s.hot.c.Get(hash)
	return ok
}
