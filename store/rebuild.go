package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	badger "github.com/dgraph-io/badger/v4"
)

// rebuild runs at Open, before any other goroutine can see the store. It
// removes leftover staging files and loads the eviction index from the b/
// entries; it returns the hashes loaded, for verifyDisk to check.
//
// Checking the files themselves (one stat per blob: seconds for 100k blobs
// on a slow disk) runs in the background after Open returns. That is safe
// because every read checks the file's size against the index anyway, so
// an entry whose file is missing or truncated is never served meanwhile;
// until the check finishes, orphans only waste disk and missing entries only
// overstate usage.
func (s *Store) rebuild() ([]hashKey, []EvictEvent, error) {
	if err := s.cleanTmp(); err != nil {
		return nil, nil, err
	}
	bad, err := s.loadIndex()
	if err != nil {
		return nil, nil, err
	}
	var events []EvictEvent
	if len(bad) > 0 {
		s.log.Warn("dropping undecodable index entries", "count", len(bad))
		if _, _, events, err = s.removeBlobs(bad, "corrupt"); err != nil {
			return nil, nil, err
		}
	}
	// Inline blobs have no file to check: their body commits in the same
	// transaction as their entry.
	loaded := make([]hashKey, 0, len(s.idx.blobs))
	for h, e := range s.idx.blobs {
		if !e.inline {
			loaded = append(loaded, h)
		}
	}
	return loaded, events, nil
}

// verifyDisk reconciles blobs/ with the index loaded at Open: files no entry
// accounts for (a crash between rename and index commit) are deleted, and
// entries whose file is missing or of the wrong size (a crash between file
// removal and index update, or outside damage) are dropped. Every removal
// re-checks under wmu, so a commit or eviction running meanwhile is never
// undone. It stops early on Close.
func (s *Store) verifyDisk(loaded []hashKey) {
	defer close(s.verified)
	seen := make(map[hashKey]struct{}, len(loaded))
	stopped := errors.New("store closing")
	err := filepath.WalkDir(s.blobDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			select {
			case <-s.stop:
				return stopped
			default:
				return nil
			}
		}
		h, perr := parseHash(d.Name())
		if perr != nil || s.blobPath(h) != path {
			s.log.Warn("removing stray file in the blob directory", "path", path)
			return removeIfExists(path)
		}
		seen[h] = struct{}{}
		s.mu.Lock()
		e, known := s.idx.blobs[h]
		s.mu.Unlock()
		if !known || e.inline {
			s.removeOrphan(h)
			return nil
		}
		if info, err := d.Info(); err == nil && info.Size() != e.size {
			s.dropBroken(h)
		}
		return nil
	})
	if errors.Is(err, stopped) {
		return
	}
	if err != nil {
		s.log.Warn("verify blob files", "err", err)
		return
	}
	for _, h := range loaded {
		if _, ok := seen[h]; !ok {
			s.dropBroken(h) // re-stats: it may have been committed again meanwhile
		}
	}
}

// removeOrphan deletes a blob file that no index entry accounts for (or
// whose entry says the body is inline). Under wmu no commit is between
// placing a file and indexing it, so a file still unknown then is truly an
// orphan.
func (s *Store) removeOrphan(h hashKey) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	e, known := s.idx.blobs[h]
	s.mu.Unlock()
	if known && !e.inline {
		return
	}
	s.log.Warn("removing blob file with no index entry", "hash", h.String())
	if err := removeIfExists(s.blobPath(h)); err != nil {
		s.log.Warn("remove orphan blob", "err", err)
	}
}

// Verified is closed once the background check of blob files started by
// Open has finished (or stopped at Close).
func (s *Store) Verified() <-chan struct{} { return s.verified }

func (s *Store) cleanTmp() error {
	entries, err := os.ReadDir(s.tmpDir)
	if err != nil {
		return fmt.Errorf("read staging dir: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.tmpDir, e.Name())); err != nil {
			return fmt.Errorf("remove leftover staging file: %w", err)
		}
	}
	return nil
}

// loadIndex reads every b/ entry into the eviction index. Prefetching is
// off: the values are inline in the LSM tree (below ValueThreshold), so
// reading them costs no value-log lookup, and nothing is read ahead that the
// loop does not use. Entries that do not decode are returned for removal.
func (s *Store) loadIndex() ([]hashKey, error) {
	var bad []hashKey
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixBlob), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			h, err := parseHash(string(item.Key()[len(prefixBlob):]))
			if err != nil {
				continue // not ours to interpret; never served either
			}
			var bv blobValue
			err = item.Value(func(v []byte) error {
				bv, err = decodeBlobValue(v)
				return err
			})
			if err != nil {
				bad = append(bad, h)
				continue
			}
			s.idx.put(h, memEntry{size: bv.size, created: bv.created, lastAccess: bv.lastAccess,
				accessCount: bv.accessCount, cas: bv.cas, inline: bv.inline, bs: s.idx.intern(bv.buildSystem)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load index: %w", err)
	}
	return bad, nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}
