package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// clock advances one second per reading, so every commit and access gets a
// distinct, ordered timestamp without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	// Tests look at files and events after the start-up check, not during it.
	<-s.Verified()
	return s
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func key(k string) messages.Ref { return messages.Ref{Namespace: "gradle", Key: k} }

func cas(b []byte) messages.Ref { return messages.Ref{Namespace: messages.CAS, Key: sum(b)} }

// content returns n bytes that differ for each seed.
func content(seed, n int) []byte {
	b := bytes.Repeat([]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}, n/3+1)
	return b[:n]
}

func put(t testing.TB, s *Store, ref messages.Ref, b []byte) messages.Meta {
	t.Helper()
	m, err := s.PutReader(ref, messages.Meta{Hash: sum(b), Size: int64(len(b)), BuildSystem: "gradle"}, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("put %s: %v", ref, err)
	}
	return m
}

// read returns the content of ref, or nil on a miss.
func read(t testing.TB, s *Store, ref messages.Ref) []byte {
	t.Helper()
	_, r, err := s.Open(ref)
	if errors.Is(err, tier.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("open %s: %v", ref, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", ref, err)
	}
	return b
}

func present(t testing.TB, s *Store, ref messages.Ref) bool {
	t.Helper()
	_, err := s.BlobMeta(ref.Key)
	return err == nil
}

// bodies counts the blob bodies the store holds on disk: files under blobs/
// and inline bodies (d/ entries) in the index.
func bodies(t testing.TB, s *Store) int {
	t.Helper()
	n := len(files(t, filepath.Join(s.opts.Dir, "blobs")))
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixData)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// files lists the regular files under dir.
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
