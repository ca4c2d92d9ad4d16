package ops

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fill(t *testing.T, s *store.Store, n int, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range n {
		body := bytes.Repeat([]byte{byte(i)}, 1+r.IntN(3000))
		body = append(body, fmt.Sprint(i)...)
		ref := messages.Ref{Namespace: "gradle", Key: fmt.Sprintf("%032x", i)}
		if _, err := s.PutReader(ref, messages.Meta{BuildSystem: "gradle"}, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRankMatchesFullSort: the bounded heap returns exactly the prefix a
// full sort of the index would, in every order.
func TestRankMatchesFullSort(t *testing.T) {
	s := openStore(t)
	fill(t, s, 600, 7)
	var all []messages.Meta
	s.Blobs(func(m messages.Meta) bool { all = append(all, m); return true })
	for _, sort := range []string{SortSizeDesc, SortSizeAsc, SortAccessedDesc, SortCreatedDesc, SortCountDesc} {
		order, _ := orderFor(sort)
		want := slices.Clone(all)
		slices.SortFunc(want, func(a, b messages.Meta) int {
			if order(&a, &b) {
				return -1
			}
			return 1
		})
		for _, k := range []int{0, 1, 37, 600, 5000} {
			got, total, err := rank(s, order, k, filter{})
			if err != nil || total != 600 {
				t.Fatalf("%s k=%d: total %d, %v", sort, k, total, err)
			}
			if len(got) != min(k, 600) {
				t.Fatalf("%s k=%d: %d entries", sort, k, len(got))
			}
			for i := range got {
				if got[i].Hash != want[i].Hash {
					t.Fatalf("%s k=%d: entry %d is %s, want %s", sort, k, i, got[i].Hash, want[i].Hash)
				}
			}
		}
	}
}

// TestRankingsServeStaleThenRefresh: within the TTL a page comes from the
// snapshot; past it the stale page is served once while a background scan
// brings the new artifact in.
func TestRankingsServeStaleThenRefresh(t *testing.T) {
	s := openStore(t)
	fill(t, s, 10, 1)
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := newRankings(s, clock)
	order, _ := orderFor(SortSizeDesc)
	if _, total, _ := r.page(SortSizeDesc, order, 0, 5); total != 10 {
		t.Fatalf("total %d", total)
	}
	big := bytes.Repeat([]byte("x"), 10_000)
	s.PutReader(messages.Ref{Namespace: "gradle", Key: "big"}, messages.Meta{}, bytes.NewReader(big))
	if items, total, _ := r.page(SortSizeDesc, order, 0, 5); total != 10 || items[0].Size == 10_000 {
		t.Fatal("a fresh snapshot was not reused")
	}
	mu.Lock()
	now = now.Add(snapshotTTL + time.Second)
	mu.Unlock()
	if _, total, _ := r.page(SortSizeDesc, order, 0, 5); total != 10 {
		t.Fatalf("stale page: total %d, want the old 10 while refreshing", total)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		items, total, _ := r.page(SortSizeDesc, order, 0, 5)
		if total == 11 && items[0].Size == 10_000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("background refresh never landed: total %d", total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A deeper page than the snapshot holds is ranked in the foreground.
	if items, total, _ := r.page(SortSizeDesc, order, 5, 100); total != 11 || len(items) != 6 {
		t.Fatalf("deep page: %d items of %d", len(items), total)
	}
}
