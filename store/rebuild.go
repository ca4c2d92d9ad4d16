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
// removes leftover staging files, loads the eviction index from the b/
// entries, deletes blob files no entry accounts for (a crash between rename
// and index commit), and drops entries whose file is missing or of the wrong
// size (a crash between file removal and index update, or outside damage).
func (s *Store) rebuild() ([]EvictEvent, error) {
	if err := s.cleanTmp(); err != nil {
		return nil, err
	}
	bad, err := s.loadIndex()
	if err != nil {
		return nil, err
	}
	seen := make(map[hashKey]struct{}, len(s.idx.blobs))
	err = filepath.WalkDir(s.blobDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		h, perr := parseHash(d.Name())
		e, known := s.idx.blobs[h]
		if perr != nil || !known || s.blobPath(h) != path {
			s.log.Warn("removing blob file with no index entry", "path", path)
			return removeIfExists(path)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() != e.size {
			s.log.Warn("removing blob file of the wrong size", "path", path, "size", info.Size(), "indexed", e.size)
			bad = append(bad, h)
			seen[h] = struct{}{} // dropped as corrupt, not again as missing
			return removeIfExists(path)
		}
		seen[h] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan blobs: %w", err)
	}
	var missing []hashKey
	for h := range s.idx.blobs {
		if _, ok := seen[h]; !ok {
			missing = append(missing, h)
		}
	}
	var events []EvictEvent
	for _, group := range []struct {
		hashes []hashKey
		reason string
	}{{bad, "corrupt"}, {missing, "missing"}} {
		if len(group.hashes) == 0 {
			continue
		}
		s.log.Warn("dropping index entries without a usable blob file", "count", len(group.hashes), "reason", group.reason)
		_, _, ev, err := s.removeBlobs(group.hashes, group.reason)
		if err != nil {
			return nil, err
		}
		events = append(events, ev...)
	}
	return events, nil
}

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
				accessCount: bv.accessCount, cas: bv.cas})
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
