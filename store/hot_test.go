package store

import (
	"bytes"
	"os"
	"testing"
)

// A small blob read twice is served from memory: with its file removed
// behind the store's back, it still reads whole. Delete, eviction and Clear
// take it out of the hot tier with the blob.
func TestHotTierServesAndForgets(t *testing.T) {
	s := openStore(t, Options{HotSize: 1 << 20, InlineMax: -1}) // files, so the test can remove one
	small, large := content(1, 4096), content(2, DefaultHotMaxObject+1)
	ms := put(t, s, key("small"), small)
	ml := put(t, s, key("large"), large)
	if !bytes.Equal(read(t, s, key("small")), small) || !bytes.Equal(read(t, s, key("large")), large) {
		t.Fatal("first reads differ from what was put")
	}
	if !s.HotCached(ms.Hash) {
		t.Fatal("a 4 KiB blob that was read is not in the hot tier")
	}
	if s.HotCached(ml.Hash) {
		t.Fatal("a blob above the hot tier's object limit was kept in memory")
	}
	h, _ := parseHash(ms.Hash)
	if err := os.Remove(s.blobPath(h)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, s, key("small")), small) {
		t.Fatal("a hot blob was not served from memory")
	}
	if err := s.Delete(key("small")); err != nil {
		t.Fatal(err)
	}
	if s.HotCached(ms.Hash) {
		t.Fatal("a deleted blob stayed in the hot tier")
	}
	if read(t, s, key("small")) != nil {
		t.Fatal("a deleted blob is still served")
	}

	// Eviction: everything out.
	me := put(t, s, key("evicted"), content(3, 2048))
	read(t, s, key("evicted"))
	if !s.HotCached(me.Hash) {
		t.Fatal("not hot before eviction")
	}
	if _, _, err := s.EvictTo(0, ""); err != nil {
		t.Fatal(err)
	}
	if s.HotCached(me.Hash) {
		t.Fatal("an evicted blob stayed in the hot tier")
	}

	mc := put(t, s, key("cleared"), content(4, 1024))
	read(t, s, key("cleared"))
	if err := s.Clear(); err != nil {
		t.Fatal(err)
	}
	if s.HotCached(mc.Hash) {
		t.Fatal("Clear left a blob in the hot tier")
	}
}

// HotSize 0 keeps no body in memory.
func TestHotTierOff(t *testing.T) {
	s := openStore(t, Options{})
	m := put(t, s, key("k"), content(5, 4096))
	read(t, s, key("k"))
	if s.HotCached(m.Hash) {
		t.Fatal("hot tier disabled but the blob is cached")
	}
}
