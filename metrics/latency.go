package metrics

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// latencyWindow is how far back the stats API's percentiles look: a
// dashboard wants "how slow is it now", not since the node started, and a
// window needs no decay math: two generations, each counting for one window,
// are swapped when the newer one is a window old.
const latencyWindow = 5 * time.Minute

// Bucket upper bounds grow by latencyFactor from latencyMin; 64 buckets span
// 50 µs to ~90 s, so interpolation inside one bucket is off by at most 12%.
const (
	latencyMin     = 50e-6
	latencyFactor  = 1.25
	latencyBuckets = 64
)

var latencyBounds = func() [latencyBuckets]float64 {
	var b [latencyBuckets]float64
	v := latencyMin
	for i := range b {
		b[i] = v
		v *= latencyFactor
	}
	return b
}()

// latencyGen is one generation of counts. Observations are lock-free: one
// atomic add on a bucket chosen with a logarithm.
type latencyGen struct {
	counts [latencyBuckets + 1]atomic.Uint64 // the last one is +Inf
}

func (g *latencyGen) reset() {
	for i := range g.counts {
		g.counts[i].Store(0)
	}
}

// latency keeps request durations across every build system and operation
// for the p50/p95/p99 of /api/v1/stats. The Prometheus histogram
// fabrik_request_duration_seconds stays the source for dashboards; this one
// exists because its quantiles are not readable from the library.
type latency struct {
	mu      sync.Mutex // serializes rotation only
	gens    [2]latencyGen
	cur     atomic.Int32 // index of the generation being filled
	started atomic.Int64 // unix nanoseconds when cur began
}

func newLatency(now time.Time) *latency {
	l := &latency{}
	l.started.Store(now.UnixNano())
	return l
}

func bucketOf(seconds float64) int {
	if seconds <= latencyMin {
		return 0
	}
	i := int(math.Ceil(math.Log(seconds/latencyMin) / math.Log(latencyFactor)))
	if i > latencyBuckets {
		return latencyBuckets
	}
	return i
}

func (l *latency) observe(now time.Time, d time.Duration) {
	l.rotate(now)
	l.gens[l.cur.Load()].counts[bucketOf(d.Seconds())].Add(1)
}

// rotate starts a new generation when the current one is a window old,
// dropping the one before it.
func (l *latency) rotate(now time.Time) {
	if now.UnixNano()-l.started.Load() < int64(latencyWindow) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.UnixNano()-l.started.Load() < int64(latencyWindow) {
		return // another goroutine rotated meanwhile
	}
	cur, next := l.cur.Load(), 1-l.cur.Load()
	if now.UnixNano()-l.started.Load() >= 2*int64(latencyWindow) {
		l.gens[cur].reset() // idle for two windows: nothing recent remains
	}
	l.gens[next].reset()
	l.cur.Store(next)
	l.started.Store(now.UnixNano())
}

// quantiles returns the q-th quantiles in seconds over the last one to two
// windows, interpolating linearly inside a bucket the way PromQL's
// histogram_quantile does. All zero when nothing was observed.
func (l *latency) quantiles(now time.Time, qs ...float64) []float64 {
	l.rotate(now)
	var counts [latencyBuckets + 1]uint64
	var total uint64
	for g := range l.gens {
		for i := range counts {
			c := l.gens[g].counts[i].Load()
			counts[i] += c
			total += c
		}
	}
	out := make([]float64, len(qs))
	if total == 0 {
		return out
	}
	for qi, q := range qs {
		rank := q * float64(total)
		var cum uint64
		for i, c := range counts {
			if c == 0 || float64(cum+c) < rank {
				cum += c
				continue
			}
			if i == latencyBuckets { // +Inf: report the largest finite bound
				out[qi] = latencyBounds[latencyBuckets-1]
				break
			}
			lo := 0.0
			if i > 0 {
				lo = latencyBounds[i-1]
			}
			out[qi] = lo + (latencyBounds[i]-lo)*(rank-float64(cum))/float64(c)
			break
		}
	}
	return out
}
