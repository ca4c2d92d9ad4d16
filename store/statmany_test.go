package store

import (
	"errors"
	"os"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/tuist/fabrik-node/messages"
)

// StatMany answers every ref as Stat does, in order, and counts one access
// per ref found, like Stat: CAS refs and keys, inline and file blobs,
// misses, malformed refs, more refs than one lock hold covers.
func TestStatManyAnswersAsStat(t *testing.T) {
	s := openStore(t, Options{Now: newClock().Now})
	small, big := content(1, 100), content(2, 100<<10) // inline, and a file of its own
	put(t, s, cas(small), small)
	put(t, s, cas(big), big)
	put(t, s, key("k-small"), small)
	put(t, s, key("k-big"), big)
	refs := []messages.Ref{
		cas(small), cas(big), key("k-small"), key("k-big"),
		cas(content(3, 10)), key("absent"),
		{Namespace: messages.CAS, Key: strings.ToUpper(sum(small))}, // not lower-case hex
		{Namespace: messages.CAS, Key: "abc"},
		{Namespace: "gradle", Key: ""},
		{Namespace: "gradle", Key: "nul\x00"},
	}
	for len(refs) < 3*statManyChunk {
		refs = append(refs, cas(big), key("absent"))
	}
	want := make([]int64, len(refs))
	before := map[string]uint64{}
	for i, ref := range refs {
		want[i] = -1
		if m, err := s.Stat(ref); err == nil {
			want[i] = m.Size
		}
	}
	for _, b := range [][]byte{small, big} {
		m, _ := s.BlobMeta(sum(b))
		before[m.Hash] = m.AccessCount
	}
	sizes, err := s.StatMany(refs)
	if err != nil || len(sizes) != len(refs) {
		t.Fatalf("StatMany = %d sizes, %v", len(sizes), err)
	}
	hits := map[string]uint64{}
	for i := range refs {
		if sizes[i] != want[i] {
			t.Errorf("ref %d %q: StatMany %d, Stat %d", i, refs[i], sizes[i], want[i])
		}
		if want[i] >= 0 {
			m, _ := s.Stat(refs[i]) // its hash; the extra access is counted below
			hits[m.Hash] += 2
		}
	}
	for _, b := range [][]byte{small, big} {
		m, _ := s.BlobMeta(sum(b))
		if got := m.AccessCount - before[m.Hash]; got != hits[m.Hash] {
			t.Errorf("blob of %d bytes: %d accesses counted, want %d (one per ref found, by StatMany and Stat each)", len(b), got, hits[m.Hash])
		}
	}
}

// A key whose blob is gone from the index (a crash between eviction's file
// removal and its index update) is a miss to StatMany, and the key is
// dropped, as Stat drops it.
func TestStatManyDropsKeysWithoutBlob(t *testing.T) {
	s := openStore(t, Options{InlineMax: -1})
	b := content(4, 300)
	put(t, s, key("k"), b)
	h, _ := parseHash(sum(b))
	s.mu.Lock()
	s.idx.remove(h)
	s.mu.Unlock()
	if err := os.Remove(s.blobPath(h)); err != nil {
		t.Fatal(err)
	}
	sizes, err := s.StatMany([]messages.Ref{key("k")})
	if err != nil || sizes[0] != -1 {
		t.Fatalf("StatMany = %v, %v; want a miss", sizes, err)
	}
	err = s.db.View(func(txn *badger.Txn) error {
		name, _ := refName(key("k"))
		_, err := getKeyValue(txn, name)
		return err
	})
	if !errors.Is(err, badger.ErrKeyNotFound) {
		t.Errorf("the key of a vanished blob: %v, want it dropped", err)
	}
}
