package store

import (
	"encoding/binary"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// prefixQueue holds the upload pool's persisted jobs:
// q/<upstream>/<big-endian seq> -> the job as the pool encoded it. The
// store never reads these values and Clear keeps them: a cleared cache
// still owes its upstreams the uploads it acknowledged.
const prefixQueue = "q/"

// QueueEntry is one persisted upload job. Value is opaque to the store.
type QueueEntry struct {
	Upstream string
	Seq      uint64
	Value    []byte
}

// Queue is the persisted upload queue: the only Badger state outside the
// key and blob index, and the only way other packages reach the database.
// Sequence numbers are the caller's; the big-endian encoding keeps each
// upstream's entries in arrival order when they are read back.
type Queue struct{ db *badger.DB }

// Queue returns the store's upload queue.
func (s *Store) Queue() *Queue { return &Queue{db: s.db} }

// Append persists entries in one transaction: all or none.
func (q *Queue) Append(entries ...QueueEntry) error {
	err := q.db.Update(func(txn *badger.Txn) error {
		for _, e := range entries {
			if err := txn.Set(queueKey(e.Upstream, e.Seq), e.Value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: persist upload jobs: %w", err)
	}
	return nil
}

// Remove forgets one entry (its upload finished or was given up).
func (q *Queue) Remove(upstream string, seq uint64) error {
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Delete(queueKey(upstream, seq)) }); err != nil {
		return fmt.Errorf("store: remove upload job: %w", err)
	}
	return nil
}

// Scan calls fn for every persisted entry, each upstream's in sequence
// order; an error from fn stops the scan and is returned. Value is valid
// only during the call.
func (q *Queue) Scan(fn func(QueueEntry) error) error {
	return q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixQueue), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			upstream, seq, ok := parseQueueKey(item.Key())
			if !ok {
				continue
			}
			err := item.Value(func(v []byte) error {
				return fn(QueueEntry{Upstream: upstream, Seq: seq, Value: v})
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func queueKey(upstream string, seq uint64) []byte {
	k := append([]byte(prefixQueue+upstream+"/"), make([]byte, 8)...)
	binary.BigEndian.PutUint64(k[len(k)-8:], seq)
	return k
}

func parseQueueKey(k []byte) (string, uint64, bool) {
	if len(k) < len(prefixQueue)+10 {
		return "", 0, false
	}
	return string(k[len(prefixQueue) : len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:]), true
}
