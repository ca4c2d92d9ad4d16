package ops

import (
	"testing"
	"time"

	"github.com/tuist/fabrik-node/metrics"
)

// The ring gives one point per minute with that minute's own counts, ends
// with the current partial minute, and forgets what is older than an hour.
func TestHistoryPerMinute(t *testing.T) {
	m := metrics.New(nil, nil)
	now := time.Unix(1_800_000_000, 0).Truncate(time.Minute)
	clock := func() time.Time { return now }
	h := NewHistory(m, clock)

	m.Hit("gradle")
	m.Miss("gradle")
	m.ObserveRequest("gradle", "get", now)
	m.DownloadedBy("gradle", 100)
	now = now.Add(time.Minute)
	h.Tick()
	m.Hit("nx")
	m.Hit("nx")
	m.Hit("nx")
	m.Miss("nx")
	m.UploadedBy("nx", 7)

	ts := h.Series()
	if len(ts.Points) != 2 {
		t.Fatalf("%d points, want 2: %+v", len(ts.Points), ts.Points)
	}
	first, last := ts.Points[0], ts.Points[1]
	if first.Hits != 1 || first.Misses != 1 || first.HitRatio != 0.5 || first.Requests != 1 || first.DownloadBytes != 100 || first.Partial {
		t.Fatalf("first minute %+v", first)
	}
	if last.Hits != 3 || last.Misses != 1 || last.HitRatio != 0.75 || last.UploadBytes != 7 || !last.Partial {
		t.Fatalf("current minute %+v", last)
	}

	// A minute with no tick is left out rather than merged into its
	// neighbour; past an hour, nothing of the first minutes is left.
	now = now.Add(3 * time.Minute)
	if got := len(h.Series().Points); got != 2 {
		t.Fatalf("after a gap: %d points, want 2 (first minute and the current one)", got)
	}
	// Asked before the ticker marked the minute: the minute that just
	// ended still has its point, and the current one starts.
	m.Hit("gradle")
	now = now.Add(time.Minute)
	ts = h.Series()
	if n := len(ts.Points); n != 3 || ts.Points[1].Hits != 1 || !ts.Points[2].Partial {
		t.Fatalf("series asked before the tick: %+v", ts.Points)
	}
	for range 70 {
		now = now.Add(time.Minute)
		h.Tick()
	}
	ts = h.Series()
	if len(ts.Points) != historyMinutes {
		t.Fatalf("%d points after 70 minutes, want %d", len(ts.Points), historyMinutes)
	}
	for _, p := range ts.Points {
		if p.Hits != 0 {
			t.Fatalf("an hour-old minute is still counted: %+v", p)
		}
	}
}

func TestDetailUpstreamStates(t *testing.T) {
	m := metrics.New(nil, nil)
	now := time.Now()
	a := &API{Metrics: m, Upstreams: []string{"upstream-0", "upstream-1", "upstream-2"}, MaxSize: func() int64 { return 42 }, Now: func() time.Time { return now }}
	m.Upstream("upstream-0", "hit")
	m.Upstream("upstream-0", "miss")
	m.Upstream("upstream-1", "error")
	m.Upstream("upstream-1", "open")
	d := a.Detail()
	if d.MaxSizeBytes != 42 || d.P2P != nil {
		t.Fatalf("detail %+v", d)
	}
	want := map[string]string{"upstream-0": "ok", "upstream-1": "circuit_open", "upstream-2": "idle"}
	if len(d.Upstreams) != 3 {
		t.Fatalf("upstreams %+v", d.Upstreams)
	}
	for i, u := range d.Upstreams {
		if u.Name != a.Upstreams[i] || u.State != want[u.Name] {
			t.Errorf("upstream %d = %+v, want %s %s", i, u, a.Upstreams[i], want[a.Upstreams[i]])
		}
	}
	if d.Upstreams[0].HitRatio != 0.5 {
		t.Errorf("hit ratio %v", d.Upstreams[0].HitRatio)
	}
	now = now.Add(time.Minute)
	if got := a.Detail().Upstreams[1].State; got != "failing" {
		t.Errorf("a minute after the circuit opened: %s, want failing", got)
	}
}
