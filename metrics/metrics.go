// Package metrics holds the node's Prometheus metrics. The names are the
// contract Tuist reads (spec: "Metrics API"); change them only deliberately.
// VictoriaMetrics/metrics keeps the hot path to an atomic add per counter.
package metrics

import (
	"fmt"
	"io"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// Set is the node's metric set. One per node so that tests running several
// nodes in one process do not mix their counters.
type Set struct {
	set *vm.Set

	mu       sync.Mutex
	hits     map[string]*vm.Counter
	misses   map[string]*vm.Counter
	hitsAll  *vm.Counter
	missAll  *vm.Counter
	upload   *vm.Counter
	download *vm.Counter
	evicted  *vm.Counter
}

// New creates a metric set. sizeBytes and objects are read at scrape time.
func New(sizeBytes, objects func() float64) *Set {
	s := &Set{set: vm.NewSet(), hits: map[string]*vm.Counter{}, misses: map[string]*vm.Counter{}}
	s.hitsAll = s.set.NewCounter("fabrik_cache_hits_total")
	s.missAll = s.set.NewCounter("fabrik_cache_misses_total")
	s.upload = s.set.NewCounter(`fabrik_bandwidth_bytes_total{direction="upload"}`)
	s.download = s.set.NewCounter(`fabrik_bandwidth_bytes_total{direction="download"}`)
	s.evicted = s.set.NewCounter("fabrik_evictions_total")
	s.set.NewGauge("fabrik_cache_hit_ratio", func() float64 {
		h, m := float64(s.hitsAll.Get()), float64(s.missAll.Get())
		if h+m == 0 {
			return 0
		}
		return h / (h + m)
	})
	if sizeBytes != nil {
		s.set.NewGauge("fabrik_cache_size_bytes", sizeBytes)
	}
	if objects != nil {
		s.set.NewGauge("fabrik_cache_objects", objects)
	}
	return s
}

// Hit counts a cache hit for a build system ("gradle", "bazel", ...).
func (s *Set) Hit(buildSystem string) {
	s.hitsAll.Inc()
	s.labelled(s.hits, "fabrik_cache_hits_by_build_system_total", buildSystem).Inc()
}

// Miss counts a cache miss for a build system.
func (s *Set) Miss(buildSystem string) {
	s.missAll.Inc()
	s.labelled(s.misses, "fabrik_cache_misses_by_build_system_total", buildSystem).Inc()
}

func (s *Set) labelled(m map[string]*vm.Counter, name, bs string) *vm.Counter {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := m[bs]
	if !ok {
		c = s.set.GetOrCreateCounter(fmt.Sprintf(`%s{build_system=%q}`, name, bs))
		m[bs] = c
	}
	return c
}

// Uploaded counts bytes received from clients; Downloaded bytes sent to them.
func (s *Set) Uploaded(n int64)   { s.upload.Add(int(n)) }
func (s *Set) Downloaded(n int64) { s.download.Add(int(n)) }

// Evicted counts evicted artifacts.
func (s *Set) Evicted(n int) { s.evicted.Add(n) }

// ObserveRequest records one client request's duration in the
// fabrik_request_duration_seconds histogram (Prometheus-style le buckets).
func (s *Set) ObserveRequest(buildSystem, op string, start time.Time) {
	s.set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`fabrik_request_duration_seconds{build_system=%q,op=%q}`, buildSystem, op)).UpdateDuration(start)
}

// Upstream counts a request to an upstream tier with its result: hit, miss,
// error, put, put_error.
func (s *Set) Upstream(upstream, result string) {
	s.set.GetOrCreateCounter(fmt.Sprintf(`fabrik_upstream_requests_total{upstream=%q,result=%q}`, upstream, result)).Inc()
}

// TierLatency records how long one tier took to answer a read.
func (s *Set) TierLatency(tierName string, start time.Time) {
	s.set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`fabrik_tier_duration_seconds{tier=%q}`, tierName)).UpdateDuration(start)
}

// Counter returns a named counter for metrics owned by other packages
// (upload queue, auth failures), created on first use.
func (s *Set) Counter(name string) *vm.Counter { return s.set.GetOrCreateCounter(name) }

// Gauge registers a callback gauge, once per name.
func (s *Set) Gauge(name string, f func() float64) { s.set.GetOrCreateGauge(name, f) }

// HitsMisses returns the totals, for the stats API.
func (s *Set) HitsMisses() (hits, misses uint64) { return s.hitsAll.Get(), s.missAll.Get() }

// Bandwidth returns upload and download byte totals.
func (s *Set) Bandwidth() (up, down uint64) { return s.upload.Get(), s.download.Get() }

// Evictions returns the eviction total.
func (s *Set) Evictions() uint64 { return s.evicted.Get() }

// WritePrometheus writes the set in Prometheus text format.
func (s *Set) WritePrometheus(w io.Writer) { s.set.WritePrometheus(w) }
