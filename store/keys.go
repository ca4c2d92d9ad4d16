package store

import (
	"fmt"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// KeyEntry is one key of a namespace and the metadata it resolves to.
type KeyEntry struct {
	Key  string
	Meta messages.Meta
}

// Keys lists up to limit keys of namespace that start with prefix and sort
// after after ("" = from the start), in byte order, with their metadata.
// It is one Badger prefix scan (the key index is ordered by namespace, then
// key); keys whose blob has left the store are skipped. Protocols that
// enumerate what they stored (OCI tags and referrers) use it.
func (s *Store) Keys(namespace, prefix, after string, limit int) ([]KeyEntry, error) {
	if namespace == "" || strings.Contains(namespace, keySep) || strings.Contains(prefix, keySep) || strings.Contains(after, keySep) {
		return nil, fmt.Errorf("store: %w: namespace %q or key prefix %q", tier.ErrInvalid, namespace, prefix)
	}
	if limit <= 0 {
		return nil, nil
	}
	nsPrefix := keyIndexKey([]byte(namespace + keySep))
	seek := append(append([]byte{}, nsPrefix...), prefix...)
	if after != "" && after >= prefix {
		// The first key after `after`: `after` itself followed by NUL sorts
		// right behind it, and NUL cannot appear in keys.
		seek = append(append(append([]byte{}, nsPrefix...), after...), 0)
	}
	var out []KeyEntry
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: append(append([]byte{}, nsPrefix...), prefix...)})
		defer it.Close()
		for it.Seek(seek); it.Valid() && len(out) < limit; it.Next() {
			item := it.Item()
			key := string(item.Key()[len(nsPrefix):])
			var kv keyValue
			if err := item.Value(func(v []byte) error {
				var err error
				kv, err = decodeKeyValue(v)
				return err
			}); err != nil {
				return fmt.Errorf("decode %s: %w", key, err)
			}
			s.mu.Lock()
			e, ok := s.idx.blobs[kv.hash]
			s.mu.Unlock()
			if !ok {
				continue
			}
			out = append(out, KeyEntry{Key: key, Meta: s.metaFor(kv.hash, e, &kv)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", namespace, err)
	}
	return out, nil
}
