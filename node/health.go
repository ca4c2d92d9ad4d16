package node

import (
	"sync"
	"time"

	"github.com/tuist/fabrik-node/ops"
)

// breakers records each upstream's circuit breaker as its remote actor
// reports it, so /health can show it without asking the actors.
type breakers struct {
	mu    sync.Mutex
	names []string
	urls  map[string]string
	until map[string]time.Time
}

func (b *breakers) add(name, url string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.urls == nil {
		b.urls, b.until = map[string]string{}, map[string]time.Time{}
	}
	b.names = append(b.names, name)
	b.urls[name] = url
}

func (b *breakers) record(name string, openUntil time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.until != nil {
		b.until[name] = openUntil
	}
}

func (b *breakers) snapshot(now time.Time) []ops.UpstreamHealth {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]ops.UpstreamHealth, 0, len(b.names))
	for _, name := range b.names {
		u := ops.UpstreamHealth{Name: name, URL: b.urls[name], Breaker: "closed"}
		if t := b.until[name]; now.Before(t) {
			u.Breaker, u.OpenUntil = "open", &t
		}
		out = append(out, u)
	}
	return out
}

// healthFigures are /health's figures: all from memory.
func (n *Node) healthFigures() ops.HealthFigures {
	f := ops.HealthFigures{Upstreams: n.breakers.snapshot(time.Now())}
	if s := n.store; s != nil {
		// The store's own bound: a reload (SIGHUP, admin API) changes it.
		f.SizeBytes, f.Objects = s.Usage()
		f.MaxSizeBytes = s.MaxSize()
	}
	if m := n.metrics; m != nil {
		f.Hits, f.Misses = m.HitsMisses()
		if f.Hits+f.Misses > 0 {
			f.HitRatio = float64(f.Hits) / float64(f.Hits+f.Misses)
		}
	}
	return f
}
