package store

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// A key read once is answered from the hot tier's key cache, and every way
// a key can change is seen by the next read: overwritten with other
// content, deleted, its blob evicted (and the same content stored again
// under another key), the store cleared.
func TestKeyCacheFollowsEveryChange(t *testing.T) {
	s := openStore(t, Options{HotSize: 1 << 20, Now: newClock().Now})
	a, b := content(1, 4096), content(2, 4096)
	// Other keys keep both blobs alive: a blob no key refers to is
	// collected, which alone would make its old keys misses.
	put(t, s, key("keep-a"), a)
	put(t, s, key("keep-b"), b)
	put(t, s, key("k"), a)
	if !bytes.Equal(read(t, s, key("k")), a) {
		t.Fatal("first read differs")
	}
	if n := s.hotKeys().len(); n != 1 {
		t.Fatalf("%d keys cached after one read, want 1", n)
	}

	put(t, s, key("k"), b)
	if got := read(t, s, key("k")); !bytes.Equal(got, b) {
		t.Fatal("overwritten key answered with its old content")
	}

	if err := s.Delete(key("k")); err != nil {
		t.Fatal(err)
	}
	if read(t, s, key("k")) != nil {
		t.Fatal("deleted key still answered")
	}

	// Evicted with its blob, then the same content comes back under
	// another key: the evicted key must stay a miss.
	put(t, s, key("e"), a)
	read(t, s, key("e"))
	if _, _, err := s.EvictTo(0, ""); err != nil {
		t.Fatal(err)
	}
	if read(t, s, key("e")) != nil {
		t.Fatal("key of an evicted blob still answered")
	}
	put(t, s, key("e"), a)
	read(t, s, key("e"))
	if _, _, err := s.EvictTo(0, ""); err != nil {
		t.Fatal(err)
	}
	put(t, s, key("other"), a)
	if read(t, s, key("e")) != nil {
		t.Fatal("key of an evicted blob came back with its content stored under another key")
	}
	if _, err := s.Stat(key("e")); err == nil {
		t.Fatal("Stat found the evicted key")
	}

	put(t, s, key("c"), b)
	read(t, s, key("c"))
	if err := s.Clear(); err != nil {
		t.Fatal(err)
	}
	if s.hotKeys().len() != 0 {
		t.Fatal("Clear left keys cached")
	}
	put(t, s, key("other"), b)
	if read(t, s, key("c")) != nil {
		t.Fatal("key cleared but answered")
	}
}

// Only keys of blobs the hot tier keeps are cached, and none with the tier
// off; the cache stays within its bound.
func TestKeyCacheScope(t *testing.T) {
	s := openStore(t, Options{HotSize: 8 * hotKeyBytes})
	put(t, s, key("large"), content(1, DefaultHotMaxObject+1))
	read(t, s, key("large"))
	if n := s.hotKeys().len(); n != 0 {
		t.Fatalf("key of a blob above the hot tier's object limit cached (%d keys)", n)
	}
	for i := range 20 {
		k := key(fmt.Sprintf("k%02d", i))
		put(t, s, k, content(10+i, 100))
		if !bytes.Equal(read(t, s, k), content(10+i, 100)) {
			t.Fatalf("read %d differs", i)
		}
	}
	if n := s.hotKeys().len(); n > 8 {
		t.Fatalf("%d keys cached, bound is 8", n)
	}
	for i := range 20 {
		if !bytes.Equal(read(t, s, key(fmt.Sprintf("k%02d", i))), content(10+i, 100)) {
			t.Fatalf("second read %d differs", i)
		}
	}

	off := openStore(t, Options{})
	put(t, off, key("k"), content(1, 100))
	read(t, off, key("k"))
	if off.hotKeys().len() != 0 {
		t.Fatal("hot tier off but keys cached")
	}
}

// Readers racing a writer that keeps moving one key between contents never
// make a stale resolution stick: once a commit returns, every read sees it
// (run with -race).
func TestKeyCacheUnderConcurrentOverwrites(t *testing.T) {
	s := openStore(t, Options{HotSize: 1 << 20})
	bodies := [][]byte{content(1, 2048), content(2, 2048), content(3, 2048)}
	for i, b := range bodies {
		put(t, s, key(fmt.Sprintf("keep%d", i)), b) // no blob is collected
	}
	put(t, s, key("k"), bodies[0])
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, r, err := s.Open(key("k"))
				if err == nil {
					r.Close()
				}
			}
		}()
	}
	for i := range 60 {
		want := bodies[i%len(bodies)]
		put(t, s, key("k"), want)
		if got := read(t, s, key("k")); !bytes.Equal(got, want) {
			close(stop)
			wg.Wait()
			t.Fatalf("commit %d: read after the commit returned other content", i)
		}
	}
	close(stop)
	wg.Wait()
}

// A value read from Badger before a key changed is not cached after the
// change: put checks the generation the reader saw before its read.
func TestKeyCachePutAfterForgetIsRefused(t *testing.T) {
	c := newKeyCache(4)
	name := []byte("gradle\x00k")
	gen := c.generation()
	c.forget(name)
	c.put(name, gen, cachedKey{created: 1})
	if _, ok := c.get(name); ok {
		t.Fatal("a value read before a forget was cached after it")
	}
	c.put(name, c.generation(), cachedKey{created: 2})
	if v, ok := c.get(name); !ok || v.created != 2 {
		t.Fatal("a fresh value was not cached")
	}
}
