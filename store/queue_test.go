package store

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tuist/fabrik-node/messages"
)

// The queue keeps each upstream's jobs in sequence order (big-endian keys,
// so 256 sorts after 255), survives a reopen, and forgets removed entries.
func TestQueueOrderRemoveAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir})
	for _, seq := range []uint64{256, 1, 255} {
		if err := s.Queue().Append(QueueEntry{Upstream: "upstream-0", Seq: seq, Value: []byte(fmt.Sprint(seq))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Queue().Append(QueueEntry{Upstream: "upstream-1", Seq: 2, Value: []byte("x")}, QueueEntry{Upstream: "upstream-1", Seq: 3, Value: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Queue().Remove("upstream-1", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, Options{Dir: dir})
	var got []string
	if err := s.Queue().Scan(func(e QueueEntry) error {
		got = append(got, fmt.Sprintf("%s/%d=%s", e.Upstream, e.Seq, e.Value))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"upstream-0/1=1", "upstream-0/255=255", "upstream-0/256=256", "upstream-1/3=y"}
	if !slices.Equal(got, want) {
		t.Fatalf("queue after reopen: %v, want %v", got, want)
	}
}

// Refs lists every key and every CAS blob once; a blob reached only
// through keys is not listed as a CAS ref.
func TestRefsListsKeysAndCASBlobs(t *testing.T) {
	s := openStore(t, Options{})
	put(t, s, key("a"), content(1, 10))
	put(t, s, key("b"), content(1, 10))
	c := content(2, 10)
	put(t, s, cas(c), c)
	var got []string
	if err := s.Refs(func(r messages.Ref) bool { got = append(got, r.String()); return true }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{cas(c).String(), key("a").String(), key("b").String()}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Refs = %v, want %v", got, want)
	}
}
