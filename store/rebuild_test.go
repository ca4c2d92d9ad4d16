package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

func TestReopenPreservesUsageAndOrder(t *testing.T) {
	dir, clk := t.TempDir(), newClock()
	s := openStore(t, Options{Dir: dir, MaxSize: 1000, Policy: PolicyLRU, Now: clk.Now})
	blobs := fill(t, s)
	for _, i := range []int{0, 1, 2, 2} {
		read(t, s, cas(blobs[i]))
	}
	put(t, s, key("named"), blobs[5]) // a key ref to an existing blob survives too
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, Options{Dir: dir, MaxSize: 1000, Policy: PolicyLRU, Now: clk.Now})
	if used, objs := s.Usage(); used != 1000 || objs != 10 {
		t.Fatalf("usage after reopen = %d, %d; want 1000, 10", used, objs)
	}
	if m, err := s.BlobMeta(sum(blobs[2])); err != nil || m.AccessCount != 2 {
		t.Fatalf("access count after reopen = %+v, %v; want 2", m, err)
	}
	extra := content(100, 100)
	put(t, s, cas(extra), extra)
	for i, b := range blobs {
		if want := i != 3 && i != 4; present(t, s, cas(b)) != want {
			t.Errorf("blob %d present = %v after reopen+evict, want %v (LRU order lost)", i, !want, want)
		}
	}
	if got := read(t, s, key("named")); !slices.Equal(got, blobs[5]) {
		t.Error("key entry lost across reopen")
	}
}

func TestStartupHygiene(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir, InlineMax: -1}) // files, to break behind the store's back
	a, b, c := content(1, 300), content(2, 400), content(3, 500)
	put(t, s, key("a"), a)
	put(t, s, key("b"), b)
	put(t, s, key("c"), c)
	s.Close()

	blobs := filepath.Join(dir, "blobs")
	orphan := []byte("committed file whose index entry never was")
	orphanHash, _ := parseHash(sum(orphan))
	mustWrite(t, s.blobPath(orphanHash), orphan)
	mustWrite(t, filepath.Join(blobs, "zz", "junk"), []byte("x"))
	mustWrite(t, filepath.Join(dir, "tmp", "stage-123"), []byte("half an upload"))
	ha, _ := parseHash(sum(a))
	hb, _ := parseHash(sum(b))
	if err := os.Remove(s.blobPath(ha)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(s.blobPath(hb), 100); err != nil {
		t.Fatal(err)
	}

	var events []EvictEvent
	var mu sync.Mutex
	s, err := Open(Options{Dir: dir, InlineMax: -1, OnEvict: func(e EvictEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// Broken entries are never served, even before the background check.
	if sizes, _ := s.StatMany([]messages.Ref{key("a"), key("b")}); sizes[0] != -1 || sizes[1] != -1 {
		t.Errorf("StatMany before verification = %v, want both missing", sizes)
	}
	for _, ref := range []messages.Ref{key("a"), key("b")} {
		if _, _, err := s.Open(ref); !errors.Is(err, tier.ErrNotFound) {
			t.Errorf("%s served before verification: %v", ref, err)
		}
	}
	<-s.Verified()
	mu.Lock()
	defer mu.Unlock()
	if used, objs := s.Usage(); used != 500 || objs != 1 {
		t.Errorf("usage = %d, %d; want only c", used, objs)
	}
	for _, ref := range []messages.Ref{key("a"), key("b"), cas(orphan)} {
		if _, err := s.Stat(ref); !errors.Is(err, tier.ErrNotFound) {
			t.Errorf("%s served after hygiene: %v", ref, err)
		}
	}
	if !slices.Equal(read(t, s, key("c")), c) {
		t.Error("healthy entry lost")
	}
	left := files(t, dir+"/blobs")
	if len(left) != 1 || filepath.Base(left[0]) != sum(c) {
		t.Errorf("blob files after hygiene: %v", left)
	}
	if f := files(t, filepath.Join(dir, "tmp")); len(f) != 0 {
		t.Errorf("staging leftovers: %v", f)
	}
	reasons := map[string]string{}
	for _, e := range events {
		reasons[e.Hash] = e.Reason
	}
	if reasons[sum(a)] != "missing" || reasons[sum(b)] != "corrupt" {
		t.Errorf("events = %+v", events)
	}
}

func TestReadsDropEntriesWhoseFileIsBroken(t *testing.T) {
	var events []EvictEvent
	s := openStore(t, Options{InlineMax: -1, OnEvict: func(e EvictEvent) { events = append(events, e) }})
	a, b := content(1, 300), content(2, 400)
	put(t, s, key("a"), a)
	put(t, s, cas(b), b)
	ha, _ := parseHash(sum(a))
	hb, _ := parseHash(sum(b))
	if err := os.Truncate(s.blobPath(ha), 10); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(key("a")); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Open of a truncated blob = %v, want ErrNotFound", err)
	}
	if err := os.Remove(s.blobPath(hb)); err != nil {
		t.Fatal(err)
	}
	// Stat trusts the index once the start-up check is done (it costs no
	// system call); the read is what finds the file gone.
	<-s.Verified()
	if _, err := s.Stat(cas(b)); err != nil {
		t.Fatalf("Stat after verification = %v, want the indexed answer", err)
	}
	if _, _, err := s.Open(cas(b)); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Open of a missing blob = %v, want ErrNotFound", err)
	}
	if used, objs := s.Usage(); used != 0 || objs != 0 {
		t.Errorf("broken entries still counted: %d, %d", used, objs)
	}
	if len(events) != 2 || events[0].Reason != "corrupt" || events[1].Reason != "missing" {
		t.Errorf("events = %+v", events)
	}
	put(t, s, key("a"), a) // the same content can be stored again
	if !slices.Equal(read(t, s, key("a")), a) {
		t.Error("re-stored content not served")
	}
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
