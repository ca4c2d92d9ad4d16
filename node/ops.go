package node

import (
	"net/http"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/ops"
	"github.com/tuist/fabrik-node/store"
)

// registerAPI mounts the API port's endpoints: /metrics now, /api/v1 next.
func (n *Node) registerAPI(mux *http.ServeMux, guard adapters.Guard) {
	if n.cfg.Observability.MetricsEnabled == nil || *n.cfg.Observability.MetricsEnabled {
		(&ops.Metrics{Set: n.metrics, Guard: guard}).Routes(mux)
	}
}

// onEvict is the store's eviction callback (called outside store locks).
func (n *Node) onEvict(e store.EvictEvent) {
	if n.metrics != nil {
		n.metrics.Evicted(1)
	}
}
