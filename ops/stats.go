package ops

import (
	"strings"

	"github.com/tuist/fabrik-node/tenant"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/tuist/fabrik-node/messages"
)

// Stats is the body of GET /api/v1/stats (spec shape) and of the
// fabrik.<node>.stats event.
type Stats struct {
	// Scope is "tenant:<name>" when the figures are one tenant's (a tenant
	// token): then only Cache is filled, since hits, bandwidth, upstream
	// reads and evictions are counted per node, not per tenant.
	Scope       string           `json:"scope,omitempty"`
	Cache       CacheStats       `json:"cache"`
	Performance PerformanceStats `json:"performance"`
	Bandwidth   BandwidthStats   `json:"bandwidth"`
	Upstream    UpstreamStats    `json:"upstream"`
	Evictions   EvictionStats    `json:"evictions"`
	// P2P are the LAN peer figures (hits, misses, bytes, peers, consent),
	// absent when P2P is off.
	P2P any `json:"p2p,omitempty"`
}

// CacheStats describes what the local tier holds.
type CacheStats struct {
	TotalObjects   int64 `json:"total_objects"`
	TotalSizeBytes int64 `json:"total_size_bytes"`
	// SizeByType is bytes per build system ("unknown" for none).
	SizeByType map[string]int64 `json:"size_by_type"`
}

// PerformanceStats are client-facing hits, misses and request latency
// percentiles over the last five to ten minutes.
type PerformanceStats struct {
	CacheHits    uint64  `json:"cache_hits"`
	CacheMisses  uint64  `json:"cache_misses"`
	HitRatio     float64 `json:"hit_ratio"`
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP95Ms float64 `json:"latency_p95_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
}

// BandwidthStats are bytes received from and sent to clients.
type BandwidthStats struct {
	UploadBytesTotal   uint64 `json:"upload_bytes_total"`
	DownloadBytesTotal uint64 `json:"download_bytes_total"`
}

// UpstreamStats are reads sent to upstream tiers (errors count as requests
// but neither as hits nor misses).
type UpstreamStats struct {
	RequestsTotal uint64 `json:"requests_total"`
	Hits          uint64 `json:"hits"`
	Misses        uint64 `json:"misses"`
}

// EvictionStats counts artifacts evicted since start and over the last hour.
type EvictionStats struct {
	Total               uint64  `json:"total"`
	EvictionRatePerHour float64 `json:"eviction_rate_per_hour"`
}

// Stats assembles the current statistics. Totals come from the store's
// in-memory index; the per-type breakdown needs a scan and is cached for
// a few seconds.
func (a *API) Stats() (Stats, error) {
	a.init()
	bytes, objects := a.Index.Usage()
	byType, err := a.types.get()
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Cache: CacheStats{TotalObjects: objects, TotalSizeBytes: bytes, SizeByType: byType}}
	if m := a.Metrics; m != nil {
		hits, misses := m.HitsMisses()
		st.Performance.CacheHits, st.Performance.CacheMisses = hits, misses
		if hits+misses > 0 {
			st.Performance.HitRatio = round(float64(hits)/float64(hits+misses), 4)
		}
		p50, p95, p99 := m.Latency()
		st.Performance.LatencyP50Ms = ms(p50)
		st.Performance.LatencyP95Ms = ms(p95)
		st.Performance.LatencyP99Ms = ms(p99)
		st.Bandwidth.UploadBytesTotal, st.Bandwidth.DownloadBytesTotal = m.Bandwidth()
		st.Upstream.RequestsTotal, st.Upstream.Hits, st.Upstream.Misses = m.UpstreamReads()
		st.Evictions.Total = m.Evictions()
		st.Evictions.EvictionRatePerHour = round(m.EvictionRatePerHour(), 2)
	}
	if a.P2P != nil {
		st.P2P = a.P2P()
	}
	return st, nil
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func (a *API) stats(w http.ResponseWriter, r *http.Request) {
	if within := scopeOf(r); within != "" {
		st, err := a.tenantStats(within)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
		return
	}
	st, err := a.Stats()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// typeSizesTTL bounds how stale size_by_type may be. Tuist polls every
// 30-60 s and the events actor every 10 s; neither needs a fresh scan of a
// large index each time.
const typeSizesTTL = 5 * time.Second

// typeSizes caches bytes per build system from one index scan.
type typeSizes struct {
	idx Index
	now func() time.Time

	mu   sync.Mutex // held during a scan: concurrent callers share it
	at   time.Time
	last map[string]int64
}

func (t *typeSizes) get() (map[string]int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last != nil && t.now().Sub(t.at) < typeSizesTTL {
		return t.last, nil
	}
	out := map[string]int64{}
	err := t.idx.Blobs(func(m messages.Meta) bool {
		out[buildSystemName(m.BuildSystem)] += m.Size
		return true
	})
	if err != nil {
		return nil, err
	}
	t.last, t.at = out, t.now()
	return out, nil
}

func (t *typeSizes) invalidate() {
	t.mu.Lock()
	t.last = nil
	t.mu.Unlock()
}

// tenantStats counts what a tenant's keys reach, by one scan of the index.
func (a *API) tenantStats(within string) (Stats, error) {
	st := Stats{Scope: "tenant:" + strings.TrimSuffix(strings.TrimPrefix(within, tenant.Root), "/"),
		Cache: CacheStats{SizeByType: map[string]int64{}}}
	f := filter{within: within, idx: a.Index}
	err := a.Index.Blobs(func(m messages.Meta) bool {
		if f.match(&m) {
			st.Cache.TotalObjects++
			st.Cache.TotalSizeBytes += m.Size
			st.Cache.SizeByType[buildSystemName(m.BuildSystem)] += m.Size
		}
		return true
	})
	return st, err
}
