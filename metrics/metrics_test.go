package metrics

import (
	"math"
	"testing"
	"time"
)

// TestLatencyQuantiles: percentiles from the bucketed summary land within
// one bucket (25%) of the exact values of a known distribution.
func TestLatencyQuantiles(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLatency(now)
	for i := 1; i <= 1000; i++ { // 1 ms .. 1000 ms, uniform
		l.observe(now, time.Duration(i)*time.Millisecond)
	}
	q := l.quantiles(now, 0.5, 0.95, 0.99)
	for i, want := range []float64{0.5, 0.95, 0.99} {
		if math.Abs(q[i]-want)/want > 0.25 {
			t.Errorf("q%v = %v s, want about %v s", want, q[i], want)
		}
	}
	// Two windows later the old observations are gone.
	later := now.Add(2*latencyWindow + time.Second)
	l.observe(later, 2*time.Millisecond)
	if q := l.quantiles(later.Add(time.Second), 0.99); q[0] > 0.003 {
		t.Errorf("p99 %v s after the window moved on, want ~2 ms", q[0])
	}
	if q := newLatency(now).quantiles(now, 0.5); q[0] != 0 {
		t.Errorf("empty p50 %v", q[0])
	}
}

func TestUpstreamAndEvictionTotals(t *testing.T) {
	s := New(nil, nil)
	for _, r := range []string{"hit", "hit", "miss", "error", "put"} {
		s.Upstream("regional", r)
	}
	if req, hits, misses := s.UpstreamReads(); req != 4 || hits != 2 || misses != 1 {
		t.Fatalf("upstream reads %d hits %d misses %d", req, hits, misses)
	}
	s.Evicted(30)
	if got := s.EvictionRatePerHour(); got != 30*60 { // a new set counts as one minute old
		t.Fatalf("eviction rate %v per hour, want 1800", got)
	}
}

// BenchmarkRequestPath is what an adapter adds per request for metrics:
// one histogram observation (plus the latency summary), a hit and the bytes
// sent. "off" is the same loop with no metric set, as adapters do with a nil
// Metrics.
func BenchmarkRequestPath(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var s *Set
			if on {
				s = New(nil, nil)
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					start := time.Now()
					if s != nil {
						s.Hit("gradle")
						s.Downloaded(4096)
						s.ObserveRequest("gradle", "get", start)
					}
				}
			})
		})
	}
}
