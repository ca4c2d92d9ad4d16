// Package metrics holds the node's Prometheus metrics. The names are the
// contract Tuist reads (spec: "Metrics API"); change them only deliberately.
// VictoriaMetrics/metrics keeps the hot path to an atomic add per counter.
package metrics

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// Set is the node's metric set. The recording methods (Hit, Miss,
// Uploaded, Downloaded, Evicted, ObserveRequest, Upstream, TierLatency) are
// no-ops on a nil *Set, so components built without metrics (tests, tools)
// need no checks of their own. One per node so that tests running several
// nodes in one process do not mix their counters.
type Set struct {
	set *vm.Set

	// hits and misses by build system: sync.Maps because they are read on
	// every request and written once per build system.
	hits     sync.Map // string -> *vm.Counter
	misses   sync.Map
	hitsAll  *vm.Counter
	missAll  *vm.Counter
	upload   *vm.Counter
	download *vm.Counter
	evicted  *vm.Counter

	// requests caches one histogram per (build system, op) so the request
	// path does not format a metric name on every call.
	requests sync.Map // reqLabels -> *vm.PrometheusHistogram
	latency  *latency

	// Upstream read results summed over every upstream, for the stats API.
	upHits, upMisses, upReads atomic.Uint64

	// Per build system and per upstream totals for the dashboard
	// (Totals): plain atomics beside the Prometheus series.
	byBuildSystem sync.Map // string -> *bsCounters
	byUpstream    sync.Map // string -> *upCounters

	evictMu sync.Mutex
	// evictMinutes counts evictions per minute over the last hour (ring
	// indexed by unix minute % 60) for eviction_rate_per_hour.
	evictMinutes [60]minuteCount
	created      time.Time
}

type reqLabels struct{ buildSystem, op string }

type minuteCount struct {
	minute int64
	n      uint64
}

// exposeTypes turns on # HELP and # TYPE lines: Prometheus then knows which
// series are counters, gauges and histograms instead of guessing "untyped".
// It is a process-wide switch of the library, set once.
var exposeTypes sync.Once

// New creates a metric set. sizeBytes and objects are read at scrape time.
func New(sizeBytes, objects func() float64) *Set {
	exposeTypes.Do(func() { vm.ExposeMetadata(true) })
	now := time.Now()
	s := &Set{set: vm.NewSet(), latency: newLatency(now), created: now}
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
	if s == nil {
		return
	}
	s.hitsAll.Inc()
	s.labelled(&s.hits, "fabrik_cache_hits_by_build_system_total", buildSystem).Inc()
}

// Miss counts a cache miss for a build system.
func (s *Set) Miss(buildSystem string) {
	if s == nil {
		return
	}
	s.missAll.Inc()
	s.labelled(&s.misses, "fabrik_cache_misses_by_build_system_total", buildSystem).Inc()
}

func (s *Set) labelled(m *sync.Map, name, bs string) *vm.Counter {
	c, ok := m.Load(bs)
	if !ok {
		c, _ = m.LoadOrStore(bs, s.set.GetOrCreateCounter(fmt.Sprintf(`%s{build_system=%q}`, name, bs)))
	}
	return c.(*vm.Counter)
}

// Uploaded counts bytes received from clients; Downloaded bytes sent to them.
func (s *Set) Uploaded(n int64) {
	if s != nil && n > 0 {
		s.upload.Add(int(n))
	}
}

func (s *Set) Downloaded(n int64) {
	if s != nil && n > 0 {
		s.download.Add(int(n))
	}
}

// Evicted counts evicted artifacts.
func (s *Set) Evicted(n int) {
	if s == nil {
		return
	}
	s.evicted.Add(n)
	minute := time.Now().Unix() / 60
	s.evictMu.Lock()
	b := &s.evictMinutes[minute%60]
	if b.minute != minute {
		*b = minuteCount{minute: minute}
	}
	b.n += uint64(n)
	s.evictMu.Unlock()
}

// EvictionRatePerHour is the evictions of the last hour, scaled up while
// the node is younger than that (and at least a minute old, so a burst right
// after start does not read as thousands per hour).
func (s *Set) EvictionRatePerHour() float64 {
	now := time.Now()
	minute := now.Unix() / 60
	var n uint64
	s.evictMu.Lock()
	for _, b := range s.evictMinutes {
		if b.minute > minute-60 {
			n += b.n
		}
	}
	s.evictMu.Unlock()
	window := min(max(now.Sub(s.created), time.Minute), time.Hour)
	return float64(n) * float64(time.Hour) / float64(window)
}

// ObserveRequest records one client request's duration in the
// fabrik_request_duration_seconds histogram (Prometheus-style le buckets)
// and in the windowed latency summary behind the stats API's percentiles.
func (s *Set) ObserveRequest(buildSystem, op string, start time.Time) {
	if s == nil {
		return
	}
	now := time.Now()
	d := now.Sub(start)
	l := reqLabels{buildSystem, op}
	h, ok := s.requests.Load(l)
	if !ok {
		h, _ = s.requests.LoadOrStore(l, s.set.GetOrCreatePrometheusHistogram(
			fmt.Sprintf(`fabrik_request_duration_seconds{build_system=%q,op=%q}`, buildSystem, op)))
	}
	h.(*vm.PrometheusHistogram).Update(d.Seconds())
	s.latency.observe(now, d)
	s.bs(buildSystem).requests.Add(1)
}

// Latency returns the 50th, 95th and 99th percentile of client request
// durations over the last five to ten minutes (zero before any request).
func (s *Set) Latency() (p50, p95, p99 time.Duration) {
	q := s.latency.quantiles(time.Now(), 0.5, 0.95, 0.99)
	sec := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	return sec(q[0]), sec(q[1]), sec(q[2])
}

// Upstream counts a request to an upstream tier with its result: hit, miss,
// error, put, put_error.
func (s *Set) Upstream(upstream, result string) {
	if s == nil {
		return
	}
	s.set.GetOrCreateCounter(fmt.Sprintf(`fabrik_upstream_requests_total{upstream=%q,result=%q}`, upstream, result)).Inc()
	s.upstream(upstream).record(result)
	switch result {
	case "hit":
		s.upHits.Add(1)
		s.upReads.Add(1)
	case "miss":
		s.upMisses.Add(1)
		s.upReads.Add(1)
	case "error":
		s.upReads.Add(1)
	}
}

// UpstreamReads returns read requests to upstreams (hits, misses and
// errors) and how many were hits and misses, summed over every upstream.
func (s *Set) UpstreamReads() (requests, hits, misses uint64) {
	return s.upReads.Load(), s.upHits.Load(), s.upMisses.Load()
}

// TierLatency records how long one tier took to answer a read.
func (s *Set) TierLatency(tierName string, start time.Time) {
	if s == nil {
		return
	}
	s.set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`fabrik_tier_duration_seconds{tier=%q}`, tierName)).UpdateDuration(start)
}

// Counter returns a named counter for metrics owned by other packages
// (upload queue, auth failures), created on first use.
func (s *Set) Counter(name string) *vm.Counter { return s.set.GetOrCreateCounter(name) }

// Histogram returns (creating) a histogram named name.
func (s *Set) Histogram(name string) *vm.Histogram { return s.set.GetOrCreateHistogram(name) }

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
