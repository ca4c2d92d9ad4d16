package node

import (
	"net/http"
	"slices"
	"time"

	"github.com/tuist/fabrik-node/adapters/gradle"
)

// startEdgeAdapters hosts the enabled HTTP adapters on the shared HTTP
// listener; each registers its own routes without knowing the others.
func (n *Node) startEdgeAdapters(grace time.Duration) error {
	bt := n.cfg.BuildTools
	enabled := func(name string) bool { return slices.Contains(bt.Enabled, name) }
	mux := http.NewServeMux()
	if enabled("gradle") {
		gradle.New(n.cache, gradle.Options{
			MaxArtifactSize: int64(n.cfg.Cache.MaxArtifactSize),
			Guard:           n.guard(nil),
			Metrics:         n.metrics,
			Logger:          n.log,
		}).Routes(mux)
	}
	return n.serveHTTP("http", bt.HTTPBind, mux, grace)
}
