package node

import (
	"net/http"

	"github.com/tuist/fabrik-node/ops"
	"github.com/tuist/fabrik-node/ops/ui"
)

// startDashboard gives the API what the dashboard reads beside the stats
// (the per-minute history, the upstreams in order, the size bound) and
// mounts the page at /ui/ when the query API it reads is on. The history's
// ticker stops with the node.
func (n *Node) startDashboard(mux *http.ServeMux, o *opsParts) {
	o.api.History = ops.NewHistory(n.metrics, nil)
	o.api.Upstreams = o.upstreamNames
	o.api.MaxSize = n.store.MaxSize
	stop := make(chan struct{})
	go o.api.History.Run(stop)
	n.closers = append(n.closers, func() { close(stop) })
	if o.api.Query {
		ui.Routes(mux, ui.Options{Version: Version, Role: string(n.opts.Role)})
	}
}
