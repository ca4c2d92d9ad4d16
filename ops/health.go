// Package ops serves what operators and Tuist pull from a node: /health on
// the public health port, /metrics and /api/v1 on the API port.
package ops

import (
	"encoding/json"
	"net/http"
	"time"
)

// Health answers GET /health for load balancers, orchestration and
// `fabrik-node health`. It is public and cheap: figures come from memory
// (the store's in-memory index, counters, breaker states), never from disk.
type Health struct {
	Started time.Time
	Version string
	// Ready, when set, turns the answer into 503 while it returns false
	// (during start-up and shutdown drain).
	Ready func() bool
	// Draining, when set and true, answers 503 "draining": the node is
	// stopping gracefully and still finishes what it has, but a load
	// balancer should send it nothing new.
	Draining func() bool
	// Figures, when set, adds the cache's figures to the answer. An open
	// upstream breaker makes the status "degraded" (still 200: the node
	// serves, from its local tier).
	Figures func() HealthFigures
}

// HealthFigures are the numbers `fabrik-node health` shows.
type HealthFigures struct {
	Objects      int64            `json:"objects"`
	SizeBytes    int64            `json:"size_bytes"`
	MaxSizeBytes int64            `json:"max_size_bytes"`
	Hits         uint64           `json:"hits"`
	Misses       uint64           `json:"misses"`
	HitRatio     float64          `json:"hit_ratio"`
	Upstreams    []UpstreamHealth `json:"upstreams"`
}

// UpstreamHealth is one upstream tier's circuit breaker.
type UpstreamHealth struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Breaker is "closed" (requests flow) or "open" (reads skip it until
	// OpenUntil).
	Breaker   string     `json:"breaker"`
	OpenUntil *time.Time `json:"open_until,omitempty"`
}

// HealthBody is the JSON answer of GET /health.
type HealthBody struct {
	Status        string `json:"status"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	Version       string `json:"version"`
	*HealthFigures
}

// Routes registers /health.
func (h *Health) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", h.serve)
}

func (h *Health) serve(w http.ResponseWriter, _ *http.Request) {
	body := HealthBody{Status: "healthy", UptimeSeconds: int64(time.Since(h.Started).Seconds()), Version: h.Version}
	code := http.StatusOK
	if h.Figures != nil {
		f := h.Figures()
		body.HealthFigures = &f
		for _, u := range f.Upstreams {
			if u.Breaker == "open" {
				body.Status = "degraded"
			}
		}
	}
	if h.Ready != nil && !h.Ready() {
		body.Status, code = "unavailable", http.StatusServiceUnavailable
	}
	if h.Draining != nil && h.Draining() {
		body.Status, code = "draining", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}
