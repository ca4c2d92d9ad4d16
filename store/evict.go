package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// EvictTo evicts blobs in the order of policy ("" = the policy in force)
// until at most targetBytes are stored.
func (s *Store) EvictTo(targetBytes int64, policy string) (evicted int, freed int64, err error) {
	if policy == "" {
		policy = s.Policy()
	} else if err := validPolicy(policy); err != nil {
		return 0, 0, err
	}
	s.wmu.Lock()
	n, freed, events, err := s.evictLocked(max(targetBytes, 0), policy, "manual")
	s.wmu.Unlock()
	s.emit(events)
	return n, freed, err
}

// ExpireTTL removes blobs not accessed since now minus Options.DefaultTTL.
func (s *Store) ExpireTTL(now time.Time) (int, error) {
	if s.opts.DefaultTTL <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-s.opts.DefaultTTL).UnixNano()
	s.wmu.Lock()
	s.mu.Lock()
	var expired []hashKey
	for h, e := range s.idx.blobs {
		if e.lastAccess < cutoff {
			expired = append(expired, h)
		}
	}
	s.mu.Unlock()
	n, _, events, err := s.removeBlobs(expired, "ttl")
	s.wmu.Unlock()
	s.emit(events)
	if err != nil {
		return n, fmt.Errorf("store: expire: %w", err)
	}
	return n, nil
}

// evictLocked evicts until usage is at most target. The caller holds wmu.
func (s *Store) evictLocked(target int64, policy, reason string) (int, int64, []EvictEvent, error) {
	s.mu.Lock()
	victims := s.idx.victims(policy, s.idx.used-target)
	s.mu.Unlock()
	hashes := make([]hashKey, len(victims))
	for i, v := range victims {
		hashes[i] = v.hash
	}
	return s.removeBlobs(hashes, reason)
}

// removeBlobs deletes blobs: from memory, then their files (disk is freed
// at once), then their b/ entries, inline bodies, reverse refs and the keys
// those name.
// reason "" removes silently (Delete); otherwise OnEvict hears of each.
// The caller holds wmu.
func (s *Store) removeBlobs(hashes []hashKey, reason string) (int, int64, []EvictEvent, error) {
	var (
		events  []EvictEvent
		gone    []hashKey
		freed   int64
		removed int
	)
	for _, h := range hashes {
		s.mu.Lock()
		e, ok := s.idx.remove(h)
		s.hotDrop(h)
		s.mu.Unlock()
		if !ok {
			// Not in memory: may still have index leftovers (a dangling key).
			gone = append(gone, h)
			continue
		}
		if !e.inline {
			if err := os.Remove(s.blobPath(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("remove blob file", "hash", h.String(), "err", err)
			}
		}
		gone = append(gone, h)
		removed++
		freed += e.size
		if reason != "" {
			events = append(events, EvictEvent{Hash: h.String(), Size: e.size, Reason: reason})
		}
	}
	err := s.batchUpdate(gone, func(txn *badger.Txn, h hashKey) error {
		return deleteBlobIndex(txn, h)
	})
	return removed, freed, events, err
}

// deleteBlobIndex deletes b/<h>, its inline body d/<h> if any, its reverse
// refs, and each key still resolving to h (a key rewritten to other content
// keeps its new value).
func deleteBlobIndex(txn *badger.Txn, h hashKey) error {
	var refs [][]byte
	it := txn.NewIterator(badger.IteratorOptions{Prefix: refPrefix(h)})
	for it.Rewind(); it.Valid(); it.Next() {
		refs = append(refs, it.Item().KeyCopy(nil))
	}
	it.Close()
	plen := len(refPrefix(h))
	for _, r := range refs {
		name := r[plen:]
		kv, err := getKeyValue(txn, name)
		if err == nil && kv.hash == h {
			if err := txn.Delete(keyIndexKey(name)); err != nil {
				return err
			}
		} else if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if err := txn.Delete(r); err != nil {
			return err
		}
	}
	if err := txn.Delete(dataKey(h)); err != nil {
		return err
	}
	return txn.Delete(blobIndexKey(h))
}

// batchUpdate applies fn to each hash, packing as many as fit into each
// Badger transaction: with SyncWrites every commit is an fsync, so evicting
// a thousand blobs one transaction each would take seconds.
func (s *Store) batchUpdate(hashes []hashKey, fn func(*badger.Txn, hashKey) error) error {
	return inTransactions(s.db, hashes, func(txn *badger.Txn, h hashKey) error {
		if err := fn(txn, h); err != nil {
			return fmt.Errorf("index update for %s: %w", h, err)
		}
		return nil
	})
}

// inTransactions applies fn to each item in one Badger transaction,
// committing it and starting another when it grows too big (then fn runs
// again for that item: what it staged before is idempotent to redo). The
// first error stops it; items committed by an earlier transaction stay.
func inTransactions[T any](db *badger.DB, items []T, fn func(*badger.Txn, T) error) error {
	if len(items) == 0 {
		return nil
	}
	txn := db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for _, it := range items {
		err := fn(txn, it)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return fmt.Errorf("commit index batch: %w", err)
			}
			txn = db.NewTransaction(true)
			err = fn(txn, it)
		}
		if err != nil {
			return err
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("commit index batch: %w", err)
	}
	return nil
}

// flusher persists access statistics in the background until Close.
func (s *Store) flusher() {
	defer close(s.done)
	t := time.NewTicker(s.opts.AccessFlushInterval)
	defer t.Stop()
	// Inline bodies (and the rare large index values) live in the value
	// log; the space of deleted ones comes back only through value-log GC.
	gc := time.NewTicker(valueLogGCInterval)
	defer gc.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		case <-gc.C:
			s.reclaim()
			continue
		}
		s.flushAccess()
	}
}

// valueLogGCInterval is how often the value log's garbage is collected: a
// pass that finds nothing to rewrite costs next to nothing, and an edge
// evicting small artifacts at a high rate makes garbage fast.
const valueLogGCInterval = time.Minute

// reclaim rewrites value-log files that are mostly garbage (evicted or
// deleted inline bodies) until none is left, freeing their disk space.
func (s *Store) reclaim() {
	for s.db.RunValueLogGC(0.5) == nil {
	}
}

// flushAccess writes pending access statistics to the b/ entries. It takes
// wmu so that it never resurrects an entry that eviction just deleted.
func (s *Store) flushAccess() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.idx.dirty == 0 {
		s.mu.Unlock()
		return
	}
	pending := make(map[hashKey]memEntry, s.idx.dirty)
	for h, e := range s.idx.blobs {
		if e.dirty {
			e.dirty = false
			s.idx.blobs[h] = e
			pending[h] = e
		}
	}
	s.idx.dirty = 0
	s.mu.Unlock()
	hashes := make([]hashKey, 0, len(pending))
	for h := range pending {
		hashes = append(hashes, h)
	}
	err := s.batchUpdate(hashes, func(txn *badger.Txn, h hashKey) error {
		item, err := txn.Get(blobIndexKey(h))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		var bv blobValue
		if err := item.Value(func(v []byte) error {
			bv, err = decodeBlobValue(v)
			return err
		}); err != nil {
			return err
		}
		e := pending[h]
		bv.lastAccess, bv.accessCount = e.lastAccess, e.accessCount
		return txn.Set(blobIndexKey(h), bv.encode())
	})
	if err != nil {
		s.log.Warn("persist access statistics", "entries", len(hashes), "err", err)
	}
}

// noteAccess asks the flusher to run early when many updates are pending.
func (s *Store) noteAccess(pending int) {
	if pending < flushThreshold {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func unixTime(ns int64) time.Time { return time.Unix(0, ns) }

// Pin keeps a blob out of eviction until as many Unpins: the upload pool
// pins each blob it still owes an upstream, since evicting it would lose
// an acknowledged artifact from every tier. A store whose every blob is
// pinned refuses new writes as full rather than lose one. Explicit deletes
// and Clear still remove pinned blobs (the pool then drops the job).
func (s *Store) Pin(hash string) {
	h, err := parseHash(hash)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.idx.pinned[h]++
	s.mu.Unlock()
}

// Unpin releases one Pin.
func (s *Store) Unpin(hash string) {
	h, err := parseHash(hash)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.idx.pinned[h] <= 1 {
		delete(s.idx.pinned, h)
	} else {
		s.idx.pinned[h]--
	}
	s.mu.Unlock()
}
