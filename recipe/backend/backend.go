// Package backend is where recipe runs keep their entries: the node's
// cache, reached either in-process (adapters.Cache of a node the CLI opened
// itself) or over HTTP through a running edge's /recipes/v1/ API. Both
// store through the node's router, so write-through to upstreams applies
// and a run on one machine is a hit on every machine sharing the regional.
package backend

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Space is a family of recipe entries; each is one namespace of the key
// index.
type Space string

const (
	// Runs holds script and Tengo target entries: "<key>.run" (the run
	// record) and "<key>.out" (the outputs archive).
	Runs Space = "runs"
	// KV holds what Tengo recipes put with fabrik.cache.put.
	KV Space = "kv"
)

// Namespace maps a space to its key-index namespace.
func (s Space) Namespace() (string, error) {
	switch s {
	case Runs:
		return "recipes", nil
	case KV:
		return "recipes-kv", nil
	}
	return "", fmt.Errorf("unknown recipe space %q", string(s))
}

// Backend stores and finds recipe entries, and keeps the ledger of runs
// (hits, misses, stored entries) that `cache list` and `cache stats` read.
type Backend interface {
	// Get opens an entry; found is false on a miss. The caller closes body.
	Get(ctx context.Context, space Space, key string) (body io.ReadCloser, size int64, found bool, err error)
	// Has reports whether an entry exists and its size.
	Has(ctx context.Context, space Space, key string) (size int64, found bool, err error)
	// Put stores size bytes from body under key.
	Put(ctx context.Context, space Space, key string, body io.Reader, size int64) error
	// Delete removes an entry (no error when it is absent).
	Delete(ctx context.Context, space Space, key string) error
	// Record appends an event to the ledger.
	Record(ctx context.Context, ev Event) error
	// Events returns the ledger.
	Events(ctx context.Context) ([]Event, error)
	// Describe names where entries go, for --verbose.
	Describe() string
}

// ValidKey accepts keys safe in a URL path segment and a key index:
// 1 to 256 of [A-Za-z0-9._:-].
func ValidKey(k string) error {
	if len(k) == 0 || len(k) > 256 {
		return fmt.Errorf("cache key must be 1 to 256 characters, got %d", len(k))
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return fmt.Errorf("cache key %q: only letters, digits and . _ : - are allowed", k)
		}
	}
	return nil
}

// Event is one line of the ledger.
type Event struct {
	Time time.Time `json:"time"`
	// Kind: "stored" (a miss ran and was cached), "hit", "miss" (ran, not
	// cached: failed, disabled or --no-cache), "clean".
	Kind string `json:"kind"`
	// Key is the full hex key; Script the recipe (and target) it belongs to.
	Key    string `json:"key"`
	Script string `json:"script"`
	// Size is the stored bytes (archive and record) of a "stored" event.
	Size int64 `json:"size,omitempty"`
	// Duration is how long the step ran (for a hit: the original run).
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Saved is, for a hit, the original run time minus the restore time.
	Saved time.Duration `json:"saved_ns,omitempty"`
}

// Entry is one cached recipe step, as `cache list` shows it.
type Entry struct {
	Key    string
	Script string
	Stored time.Time
	Size   int64
	Hits   int
}

// Stats are `cache stats`.
type Stats struct {
	Entries int
	Bytes   int64
	Hits    int
	Misses  int
	Saved   time.Duration
}

// Summarize folds the ledger into the live entries (stored and not
// cleaned since, sorted by time) and the totals.
func Summarize(events []Event) ([]Entry, Stats) {
	live := map[string]*Entry{}
	var order []string
	var st Stats
	for _, e := range events {
		switch e.Kind {
		case "stored":
			if _, ok := live[e.Key]; !ok {
				order = append(order, e.Key)
			}
			live[e.Key] = &Entry{Key: e.Key, Script: e.Script, Stored: e.Time, Size: e.Size}
			st.Misses++
		case "hit":
			st.Hits++
			st.Saved += e.Saved
			if en, ok := live[e.Key]; ok {
				en.Hits++
			} else if e.Size > 0 {
				// Restored from an upstream: now in this node's cache too.
				order = append(order, e.Key)
				live[e.Key] = &Entry{Key: e.Key, Script: e.Script, Stored: e.Time, Size: e.Size, Hits: 1}
			}
		case "miss":
			st.Misses++
		case "clean":
			delete(live, e.Key)
		}
	}
	var out []Entry
	for _, k := range order {
		if en, ok := live[k]; ok {
			out = append(out, *en)
			delete(live, k)
			st.Entries++
			st.Bytes += en.Size
		}
	}
	return out, st
}
