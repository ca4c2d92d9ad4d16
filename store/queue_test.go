package store

import (
	"fmt"
	"slices"
	"testing"
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
