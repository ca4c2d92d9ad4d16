package store

import (
	"fmt"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// Keys calls fn, in ascending byte order, with every key of namespace that
// starts with prefix and sorts after after ("" = from the first), until fn
// returns false. It is a read-only Badger prefix scan of the k/ entries
// (values are a few dozen bytes, inline in the LSM tree); keys whose blob
// has left the store are skipped. It counts no access, so listing a bucket
// or a repository's tags never makes its objects look popular. Keys
// committed or evicted during the scan may or may not be seen. Protocols
// that enumerate what they stored (S3 ListObjects, OCI tags and referrers)
// use it.
func (s *Store) Keys(namespace, prefix, after string, fn func(key string, meta messages.Meta) bool) error {
	if namespace == "" || strings.Contains(namespace, keySep) || strings.Contains(prefix, keySep) || strings.Contains(after, keySep) {
		return fmt.Errorf("store: list %q: %w", namespace, tier.ErrInvalid)
	}
	base := keyIndexKey([]byte(namespace + keySep))
	scan := append(append([]byte{}, base...), prefix...)
	start := scan
	if after != "" && after >= prefix {
		// Seek just past after: after+"\x00" is the smallest key above it
		// (NUL cannot appear in keys).
		start = append(append(append([]byte{}, base...), after...), 0)
	}
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = scan
		opts.PrefetchSize = 64
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(start); it.ValidForPrefix(scan); it.Next() {
			item := it.Item()
			key := string(item.Key()[len(base):])
			if key <= after {
				continue
			}
			var kv keyValue
			if err := item.Value(func(b []byte) error {
				var err error
				kv, err = decodeKeyValue(b)
				return err
			}); err != nil {
				return fmt.Errorf("store: list %s: read %q: %w", namespace, key, err)
			}
			s.mu.Lock()
			e, ok := s.idx.blobs[kv.hash]
			s.mu.Unlock()
			if !ok {
				continue
			}
			if !fn(key, s.metaFor(kv.hash, e, &kv)) {
				return nil
			}
		}
		return nil
	})
}
