package backend

import (
	"path/filepath"
	"testing"
	"time"
)

func TestLedgerSummary(t *testing.T) {
	l := OpenLedger(filepath.Join(t.TempDir(), "l.jsonl"))
	for _, ev := range []Event{
		{Kind: "stored", Key: "a", Script: "a.sh", Size: 100},
		{Kind: "stored", Key: "b", Script: "b.sh", Size: 50},
		{Kind: "hit", Key: "a", Saved: time.Second},
		{Kind: "hit", Key: "a", Saved: 2 * time.Second},
		{Kind: "miss", Key: "c"},
		{Kind: "clean", Key: "b"},
		{Kind: "hit", Key: "r", Script: "r.sh", Size: 7, Saved: time.Second}, // restored from an upstream
	} {
		if err := l.Append(ev); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := l.Events()
	if err != nil || len(evs) != 7 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	entries, st := Summarize(evs)
	if len(entries) != 2 || entries[0].Key != "a" || entries[0].Hits != 2 || entries[1].Key != "r" {
		t.Fatalf("entries %+v", entries)
	}
	if st != (Stats{Entries: 2, Bytes: 107, Hits: 3, Misses: 3, Saved: 4 * time.Second}) {
		t.Fatalf("stats %+v", st)
	}
	for _, k := range []string{"", "a b", "../x", string(make([]byte, 300))} {
		if ValidKey(k) == nil {
			t.Errorf("ValidKey(%q) accepted", k)
		}
	}
}
