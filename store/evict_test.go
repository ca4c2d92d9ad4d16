package store

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// fill stores ten 100-byte blobs, 0 to 9 in creation order.
func fill(t *testing.T, s *Store) [][]byte {
	var blobs [][]byte
	for i := range 10 {
		b := content(i, 100)
		put(t, s, cas(b), b)
		blobs = append(blobs, b)
	}
	return blobs
}

func TestEvictionOrder(t *testing.T) {
	cases := []struct {
		policy  string
		access  []int // blobs read, in order
		evicted []int // the two blobs the 11th commit must push out
	}{
		{PolicyLRU, []int{0, 1, 2}, []int{3, 4}},
		// Counts: 0 read three times, 5 and 9 never; 5 is older than 9.
		{PolicyLFU, []int{0, 0, 0, 1, 2, 3, 4, 6, 7, 8}, []int{5, 9}},
		// ttl ignores recent access: oldest created goes first.
		{PolicyTTL, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, []int{0, 1}},
	}
	for _, c := range cases {
		t.Run(c.policy, func(t *testing.T) {
			var mu sync.Mutex
			var events []EvictEvent
			s := openStore(t, Options{MaxSize: 1000, Policy: PolicyTTL, Now: newClock().Now, OnEvict: func(e EvictEvent) {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}})
			if err := s.SetPolicy(c.policy); err != nil { // policies change at runtime
				t.Fatal(err)
			}
			blobs := fill(t, s)
			for _, i := range c.access {
				if read(t, s, cas(blobs[i])) == nil {
					t.Fatalf("blob %d missing before eviction", i)
				}
			}
			extra := content(100, 100)
			put(t, s, cas(extra), extra) // 1100 > 1000: evict to 900-100
			var gone []int
			for i, b := range blobs {
				if !present(t, s, cas(b)) {
					gone = append(gone, i)
				}
			}
			if len(gone) != 2 || gone[0] != c.evicted[0] || gone[1] != c.evicted[1] {
				t.Fatalf("evicted %v, want %v", gone, c.evicted)
			}
			if used, objs := s.Usage(); used != 900 || objs != 9 {
				t.Errorf("usage = %d, %d; want 900, 9", used, objs)
			}
			if len(events) != 2 || events[0].Reason != "size" || events[0].Size != 100 {
				t.Errorf("OnEvict events = %+v", events)
			}
			if n := bodies(t, s); n != 9 {
				t.Errorf("%d blob bodies stored, want 9: eviction must remove bodies at once", n)
			}
		})
	}
	s := openStore(t, Options{})
	if err := s.SetPolicy("random"); !errors.Is(err, tier.ErrInvalid) {
		t.Errorf("SetPolicy(random) = %v", err)
	}
}

func TestSizeBoundHoldsAfterEveryCommit(t *testing.T) {
	const maxSize = 10_000
	s := openStore(t, Options{MaxSize: maxSize, Policy: PolicyLRU})
	rng := rand.New(rand.NewPCG(1, 2))
	evictions := 0
	for i := range 300 {
		_, before := s.Usage()
		b := content(i, 1+rng.IntN(3000))
		ref := key(string(rune('a' + rng.IntN(20))))
		if _, err := s.PutReader(ref, messages.Meta{}, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		used, after := s.Usage()
		if used > maxSize {
			t.Fatalf("commit %d: usage %d over MaxSize %d", i, used, maxSize)
		}
		if after < before {
			evictions++
			if used > maxSize*9/10 {
				t.Fatalf("commit %d evicted only down to %d, above the low-water mark", i, used)
			}
		}
	}
	if evictions == 0 {
		t.Fatal("the test never made the store evict")
	}
}

func TestTooLargeArtifactIsErrFullAndEvictsNothing(t *testing.T) {
	s := openStore(t, Options{MaxSize: 1000})
	for i := range 5 {
		put(t, s, key(string(rune('a'+i))), content(i, 100))
	}
	big := content(9, 1500)
	_, err := s.PutReader(key("big"), messages.Meta{Size: 1500}, bytes.NewReader(big))
	if !errors.Is(err, tier.ErrFull) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
	if used, objs := s.Usage(); used != 500 || objs != 5 {
		t.Errorf("usage = %d, %d: a refused write must not evict", used, objs)
	}
	if n := bodies(t, s); n != 5 {
		t.Errorf("%d blob bodies, want 5", n)
	}
	if f := files(t, filepath.Join(s.opts.Dir, "tmp")); len(f) != 0 {
		t.Errorf("staging left: %v", f)
	}
}

func TestExpireTTL(t *testing.T) {
	clk := newClock()
	var events []EvictEvent
	s := openStore(t, Options{DefaultTTL: time.Hour, Now: clk.Now, OnEvict: func(e EvictEvent) { events = append(events, e) }})
	old, fresh := content(1, 10), content(2, 20)
	put(t, s, key("old"), old)
	put(t, s, key("fresh"), fresh)
	if n, err := s.ExpireTTL(clk.Now().Add(30 * time.Minute)); err != nil || n != 0 {
		t.Fatalf("ExpireTTL within the TTL removed %d (%v)", n, err)
	}
	clk.mu.Lock()
	clk.t = clk.t.Add(2 * time.Hour)
	clk.mu.Unlock()
	read(t, s, key("fresh")) // accessed now: stays
	n, err := s.ExpireTTL(clk.Now().Add(30 * time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("ExpireTTL removed %d (%v), want 1", n, err)
	}
	if read(t, s, key("old")) != nil || read(t, s, key("fresh")) == nil {
		t.Error("wrong blob expired")
	}
	if len(events) != 1 || events[0].Reason != "ttl" || events[0].Hash != sum(old) {
		t.Errorf("events = %+v", events)
	}
}

func TestSetMaxSizeAndEvictTo(t *testing.T) {
	s := openStore(t, Options{Policy: PolicyLRU, Now: newClock().Now})
	blobs := fill(t, s)
	s.SetMaxSize(500)
	if used, _ := s.Usage(); used > 450 {
		t.Fatalf("usage %d after lowering MaxSize to 500, want <= 450", used)
	}
	if present(t, s, cas(blobs[0])) || !present(t, s, cas(blobs[9])) {
		t.Error("lowering MaxSize did not evict the least recently used")
	}
	n, freed, err := s.EvictTo(0, PolicyLFU)
	if err != nil || freed != 400 || n != 4 {
		t.Fatalf("EvictTo(0) = %d, %d, %v", n, freed, err)
	}
	if used, objs := s.Usage(); used != 0 || objs != 0 {
		t.Errorf("usage %d, %d", used, objs)
	}
}

// A pinned blob (a write-through still owed to an upstream) is never an
// eviction victim: the next ones in order go instead, and after Unpin it
// is an ordinary candidate again. A store of pinned blobs only refuses.
func TestPinnedBlobsAreNotEvicted(t *testing.T) {
	s := openStore(t, Options{MaxSize: 1000, Policy: PolicyLRU, Now: newClock().Now})
	blobs := fill(t, s) // ten blobs of 100 bytes, oldest first
	s.Pin(sum(blobs[0]))
	s.Pin(sum(blobs[1]))
	extra := content(100, 100)
	put(t, s, cas(extra), extra) // evicts two: 0 and 1 are pinned, so 2 and 3
	for i, want := range []bool{true, true, false, false, true} {
		if _, err := s.Stat(cas(blobs[i])); (err == nil) != want {
			t.Errorf("blob %d present=%v, want %v", i, err == nil, want)
		}
	}
	s.Unpin(sum(blobs[0]))
	s.Unpin(sum(blobs[1]))
	// The Stats above were accesses; by creation order blob 0 is next.
	if err := s.SetPolicy(PolicyTTL); err != nil {
		t.Fatal(err)
	}
	extra2 := content(101, 200)
	put(t, s, cas(extra2), extra2)
	if _, err := s.Stat(cas(blobs[0])); err == nil {
		t.Error("an unpinned blob is still protected from eviction")
	}
}
