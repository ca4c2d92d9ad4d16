package ops

import (
	"net/http"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/metrics"
)

// Metrics serves GET /metrics in Prometheus text format.
type Metrics struct {
	Set   *metrics.Set
	Guard adapters.Guard
}

// Routes registers /metrics.
func (m *Metrics) Routes(mux *http.ServeMux) {
	mux.Handle("GET /metrics", m.Guard.Wrap(adapters.Read, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m.Set.WritePrometheus(w)
		// go_goroutines, process_resident_memory_bytes, process_open_fds
		// and the Go runtime's figures: what a soak or an operator watches
		// for leaks (make soak reads go_goroutines here).
		vm.WriteProcessMetrics(w)
	})))
}
