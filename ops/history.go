package ops

import (
	"net/http"
	"sync"
	"time"

	"github.com/tuist/fabrik-node/metrics"
)

// historyMinutes is how far back the dashboard's chart goes.
const historyMinutes = 60

// History keeps the node's own recent past for the dashboard: a bounded
// ring of the cumulative counters as they stood at the start of each of the
// last historyMinutes+1 minutes. A minute's figures are the difference to
// the next minute's (the live counters for the current one), so recording
// costs one small copy per minute whatever the traffic.
type History struct {
	m   *metrics.Set
	now func() time.Time

	mu   sync.Mutex
	ring [historyMinutes + 1]mark
}

// mark is the counters at the start of one minute.
type mark struct {
	minute int64 // unix minute; 0: empty slot
	c      counters
}

type counters struct {
	hits, misses, requests, up, down uint64
}

func (a counters) sub(b counters) counters {
	return counters{a.hits - b.hits, a.misses - b.misses, a.requests - b.requests, a.up - b.up, a.down - b.down}
}

// NewHistory starts an empty history over m; the first mark is taken now,
// so the minute the node started is covered from its beginning.
func NewHistory(m *metrics.Set, now func() time.Time) *History {
	if now == nil {
		now = time.Now
	}
	h := &History{m: m, now: now}
	h.Tick()
	return h
}

func (h *History) read() counters {
	if h.m == nil {
		return counters{}
	}
	hits, misses := h.m.HitsMisses()
	up, down := h.m.Bandwidth()
	var req uint64
	for _, t := range h.m.BuildSystems() {
		req += t.Requests
	}
	return counters{hits, misses, req, up, down}
}

// Tick records the counters for the current minute unless that minute has
// a mark already. Call it at least once a minute (Run does, every 10 s).
func (h *History) Tick() {
	minute := h.now().Unix() / 60
	c := h.read()
	h.mu.Lock()
	defer h.mu.Unlock()
	slot := &h.ring[minute%int64(len(h.ring))]
	if slot.minute != minute {
		*slot = mark{minute: minute, c: c}
	}
}

// Run ticks every 10 s until stop is closed.
func (h *History) Run(stop <-chan struct{}) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			h.Tick()
		}
	}
}

// MinutePoint is one minute of the timeseries.
type MinutePoint struct {
	Start         string  `json:"start"`
	Hits          uint64  `json:"hits"`
	Misses        uint64  `json:"misses"`
	HitRatio      float64 `json:"hit_ratio"`
	Requests      uint64  `json:"requests"`
	UploadBytes   uint64  `json:"upload_bytes"`
	DownloadBytes uint64  `json:"download_bytes"`
	// Partial marks the current minute, still counting.
	Partial bool `json:"partial,omitempty"`
}

// Timeseries is GET /api/v1/stats/timeseries.
type Timeseries struct {
	IntervalSeconds int           `json:"interval_seconds"`
	Points          []MinutePoint `json:"points"`
}

// Series returns the minutes of the last hour the node was up for, oldest
// first, ending with the current (partial) minute.
func (h *History) Series() Timeseries {
	// The ticker may not have marked the current minute yet (it runs every
	// 10 s): without that mark the last full minute would have no end and
	// the current one no start. Marking late moves at most those seconds of
	// traffic into the previous minute, instead of dropping both.
	h.Tick()
	now := h.now()
	minute := now.Unix() / 60
	live := h.read()
	h.mu.Lock()
	marks := map[int64]counters{}
	for _, m := range h.ring {
		if m.minute > minute-int64(len(h.ring)) && m.minute <= minute {
			marks[m.minute] = m.c
		}
	}
	h.mu.Unlock()
	ts := Timeseries{IntervalSeconds: 60, Points: []MinutePoint{}}
	for m := minute - historyMinutes + 1; m <= minute; m++ {
		start, ok := marks[m]
		if !ok {
			continue
		}
		end, ok := marks[m+1]
		if m == minute {
			end, ok = live, true
		}
		if !ok {
			continue // a gap (no tick that minute): better no point than a wrong one
		}
		d := end.sub(start)
		p := MinutePoint{
			Start: time.Unix(m*60, 0).UTC().Format(time.RFC3339), Hits: d.hits, Misses: d.misses,
			Requests: d.requests, UploadBytes: d.up, DownloadBytes: d.down, Partial: m == minute,
		}
		if d.hits+d.misses > 0 {
			p.HitRatio = round(float64(d.hits)/float64(d.hits+d.misses), 4)
		}
		ts.Points = append(ts.Points, p)
	}
	return ts
}

func (a *API) timeseries(w http.ResponseWriter, r *http.Request) {
	if a.History == nil {
		writeJSON(w, http.StatusOK, Timeseries{IntervalSeconds: 60, Points: []MinutePoint{}})
		return
	}
	writeJSON(w, http.StatusOK, a.History.Series())
}
