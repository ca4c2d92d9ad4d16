package store

import (
	"bytes"
	"fmt"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// Keys calls fn, in ascending byte order, with every key of namespace that
// starts with prefix and sorts after after ("" = from the first), until fn
// returns false. It is a read-only Badger prefix scan of the k/ entries
// (values are a few dozen bytes, inline in the LSM tree): it counts no
// access, so listing a bucket never makes its objects look popular. Keys
// committed or evicted during the scan may or may not be seen.
func (s *Store) Keys(namespace, prefix, after string, fn func(key string, meta messages.Meta) bool) error {
	if namespace == "" || strings.Contains(namespace, keySep) || strings.Contains(prefix, keySep) {
		return fmt.Errorf("store: list %q: %w", namespace, tier.ErrInvalid)
	}
	base := []byte(prefixKey + namespace + keySep)
	scan := append(append([]byte{}, base...), prefix...)
	start := scan
	if after > prefix {
		// Seek just past after: after+"\x00" is the smallest key above it.
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
			key := string(bytes.TrimPrefix(item.Key(), base))
			if key <= after {
				continue
			}
			var kv keyValue
			err := item.Value(func(b []byte) error {
				var err error
				kv, err = decodeKeyValue(b)
				return err
			})
			if err != nil {
				return fmt.Errorf("store: list %s: read %q: %w", namespace, key, err)
			}
			m := messages.Meta{Hash: kv.hash.String(), Size: kv.size, BuildSystem: kv.buildSystem,
				Attrs: kv.attrs, CreatedAt: unixTime(kv.created)}
			if !fn(key, m) {
				return nil
			}
		}
		return nil
	})
}
