package p2p

import (
	"sync/atomic"
	"time"
)

// Stats are the P2P figures of /metrics and /api/v1/stats. The node reads
// them; the latency histogram is observed through OnLatency.
type Stats struct {
	hits, misses, bytesIn, served, refused atomic.Uint64
	// OnLatency observes one P2P hit's time to first byte.
	OnLatency func(time.Duration)
}

// Snapshot is a copy of the counters.
type Snapshot struct {
	Hits        uint64 `json:"hits"`
	Misses      uint64 `json:"misses"`
	BytesIn     uint64 `json:"bytes_received"`
	BytesServed uint64 `json:"bytes_served"`
	Refused     uint64 `json:"refused"`
}

// Snapshot reads the counters.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{Hits: s.hits.Load(), Misses: s.misses.Load(), BytesIn: s.bytesIn.Load(), BytesServed: s.served.Load(), Refused: s.refused.Load()}
}
