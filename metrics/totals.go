package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// bsCounters are one build system's totals.
type bsCounters struct {
	requests, up, down atomic.Uint64
}

func (s *Set) bs(name string) *bsCounters {
	c, ok := s.byBuildSystem.Load(name)
	if !ok {
		c, _ = s.byBuildSystem.LoadOrStore(name, &bsCounters{})
	}
	return c.(*bsCounters)
}

// UploadedBy counts bytes received from a build system's clients (and in
// the total, like Uploaded).
func (s *Set) UploadedBy(buildSystem string, n int64) {
	if s == nil || n <= 0 {
		return
	}
	s.Uploaded(n)
	s.bs(buildSystem).up.Add(uint64(n))
}

// DownloadedBy counts bytes sent to a build system's clients (and in the
// total, like Downloaded).
func (s *Set) DownloadedBy(buildSystem string, n int64) {
	if s == nil || n <= 0 {
		return
	}
	s.Downloaded(n)
	s.bs(buildSystem).down.Add(uint64(n))
}

// BuildSystemTotals are one build system's counts since start.
type BuildSystemTotals struct {
	Requests, Hits, Misses, UploadBytes, DownloadBytes uint64
}

// BuildSystems returns the totals of every build system seen since start.
func (s *Set) BuildSystems() map[string]BuildSystemTotals {
	out := map[string]BuildSystemTotals{}
	s.byBuildSystem.Range(func(k, v any) bool {
		c := v.(*bsCounters)
		out[k.(string)] = BuildSystemTotals{Requests: c.requests.Load(), UploadBytes: c.up.Load(), DownloadBytes: c.down.Load()}
		return true
	})
	for _, m := range []struct {
		src *syncMap
		hit bool
	}{{(*syncMap)(&s.hits), true}, {(*syncMap)(&s.misses), false}} {
		m.src.each(func(name string, n uint64) {
			t := out[name]
			if m.hit {
				t.Hits = n
			} else {
				t.Misses = n
			}
			out[name] = t
		})
	}
	return out
}

// upCounters are one upstream's read outcomes and its last one.
type upCounters struct {
	hits, misses, errors, refused atomic.Uint64
	last                          atomic.Pointer[lastResult]
}

type lastResult struct {
	result string
	at     time.Time
}

func (s *Set) upstream(name string) *upCounters {
	c, ok := s.byUpstream.Load(name)
	if !ok {
		c, _ = s.byUpstream.LoadOrStore(name, &upCounters{})
	}
	return c.(*upCounters)
}

func (c *upCounters) record(result string) {
	switch result {
	case "hit":
		c.hits.Add(1)
	case "miss":
		c.misses.Add(1)
	case "error":
		c.errors.Add(1)
	case "open", "shed":
		c.refused.Add(1)
	default:
		return // writes (put, put_error) say nothing about reads
	}
	c.last.Store(&lastResult{result: result, at: time.Now()})
}

// UpstreamTotals are one upstream's read outcomes since start. Refused
// counts reads its actor answered as misses without asking it (circuit
// open, too many in flight).
type UpstreamTotals struct {
	Hits, Misses, Errors, Refused uint64
	// LastResult is the latest read outcome ("" before any) and LastAt its time.
	LastResult string
	LastAt     time.Time
}

// Upstreams returns the read totals of every upstream that has been asked.
func (s *Set) Upstreams() map[string]UpstreamTotals {
	out := map[string]UpstreamTotals{}
	s.byUpstream.Range(func(k, v any) bool {
		c := v.(*upCounters)
		t := UpstreamTotals{Hits: c.hits.Load(), Misses: c.misses.Load(), Errors: c.errors.Load(), Refused: c.refused.Load()}
		if l := c.last.Load(); l != nil {
			t.LastResult, t.LastAt = l.result, l.at
		}
		out[k.(string)] = t
		return true
	})
	return out
}

// syncMap is the hits/misses map (build system -> *vm.Counter).
type syncMap sync.Map

func (m *syncMap) each(fn func(name string, n uint64)) {
	(*sync.Map)(m).Range(func(k, v any) bool {
		fn(k.(string), v.(*vm.Counter).Get())
		return true
	})
}
