// Package ops serves what operators and Tuist pull from a node: /health on
// the public health port, /metrics and /api/v1 on the API port.
package ops

import (
	"encoding/json"
	"net/http"
	"time"
)

// Health answers GET /health for load balancers and orchestration. It is
// public and cheap: no store access.
type Health struct {
	Started time.Time
	Version string
	// Ready, when set, turns the answer into 503 while it returns false
	// (during start-up and shutdown drain).
	Ready func() bool
}

// Routes registers /health.
func (h *Health) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", h.serve)
}

func (h *Health) serve(w http.ResponseWriter, _ *http.Request) {
	status, code := "healthy", http.StatusOK
	if h.Ready != nil && !h.Ready() {
		status, code = "unavailable", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{
		"status":         status,
		"uptime_seconds": int64(time.Since(h.Started).Seconds()),
		"version":        h.Version,
	})
}
